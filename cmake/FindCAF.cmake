# FindCAF.cmake -- locate the C++ Actor Framework (CAF) 0.17.x.
#
# Why this exists: Debian 12's libcaf-dev (0.17.6) installs headers and shared
# libraries but no CMake package config (CAFConfig.cmake), so find_package(CAF)
# needs a find module. It is also installed next to statefoldConfig.cmake so that
# consumers of statefold::actors can find_dependency(CAF).
#
# Components: core, io (default: both). io depends on core.
#
# Imported targets:
#   CAF::core   libcaf_core
#   CAF::io     libcaf_io (links CAF::core)
#
# Result variables:
#   CAF_FOUND, CAF_VERSION, CAF_INCLUDE_DIR, CAF_CORE_LIBRARY, CAF_IO_LIBRARY,
#   CAF_core_FOUND, CAF_io_FOUND
#
# Hints: set CAF_ROOT (or CMAKE_PREFIX_PATH) to a non-default install prefix.

if(NOT CAF_FIND_COMPONENTS)
  set(CAF_FIND_COMPONENTS core io)
  set(CAF_FIND_REQUIRED_core TRUE)
  set(CAF_FIND_REQUIRED_io TRUE)
endif()
if("io" IN_LIST CAF_FIND_COMPONENTS AND NOT "core" IN_LIST CAF_FIND_COMPONENTS)
  list(APPEND CAF_FIND_COMPONENTS core)
  set(CAF_FIND_REQUIRED_core TRUE)
endif()

find_path(CAF_INCLUDE_DIR NAMES caf/all.hpp caf/config.hpp)
find_library(CAF_CORE_LIBRARY NAMES caf_core)
find_library(CAF_IO_LIBRARY NAMES caf_io)
mark_as_advanced(CAF_INCLUDE_DIR CAF_CORE_LIBRARY CAF_IO_LIBRARY)

# CAF_VERSION in caf/config.hpp is MAJOR*10000 + MINOR*100 + PATCH (1706 -> 0.17.6).
unset(CAF_VERSION)
if(CAF_INCLUDE_DIR AND EXISTS "${CAF_INCLUDE_DIR}/caf/config.hpp")
  file(STRINGS "${CAF_INCLUDE_DIR}/caf/config.hpp" _caf_version_line
       REGEX "^#define[ \t]+CAF_VERSION[ \t]+[0-9]+")
  if(_caf_version_line MATCHES "CAF_VERSION[ \t]+([0-9]+)")
    set(_caf_v "${CMAKE_MATCH_1}")
    math(EXPR _caf_major "${_caf_v} / 10000")
    math(EXPR _caf_minor "(${_caf_v} / 100) % 100")
    math(EXPR _caf_patch "${_caf_v} % 100")
    set(CAF_VERSION "${_caf_major}.${_caf_minor}.${_caf_patch}")
    unset(_caf_v)
    unset(_caf_major)
    unset(_caf_minor)
    unset(_caf_patch)
  endif()
  unset(_caf_version_line)
endif()

set(CAF_core_FOUND FALSE)
if(CAF_INCLUDE_DIR AND CAF_CORE_LIBRARY)
  set(CAF_core_FOUND TRUE)
endif()
set(CAF_io_FOUND FALSE)
if(CAF_core_FOUND AND CAF_IO_LIBRARY)
  set(CAF_io_FOUND TRUE)
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(CAF
  REQUIRED_VARS CAF_INCLUDE_DIR CAF_CORE_LIBRARY
  VERSION_VAR CAF_VERSION
  HANDLE_COMPONENTS)

if(CAF_FOUND)
  if(NOT TARGET Threads::Threads)
    find_package(Threads QUIET)
  endif()
  if(CAF_core_FOUND AND NOT TARGET CAF::core)
    add_library(CAF::core UNKNOWN IMPORTED)
    set_target_properties(CAF::core PROPERTIES
      IMPORTED_LOCATION "${CAF_CORE_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${CAF_INCLUDE_DIR}")
    if(TARGET Threads::Threads)
      set_property(TARGET CAF::core APPEND PROPERTY INTERFACE_LINK_LIBRARIES Threads::Threads)
    endif()
  endif()
  if(CAF_io_FOUND AND NOT TARGET CAF::io)
    add_library(CAF::io UNKNOWN IMPORTED)
    set_target_properties(CAF::io PROPERTIES
      IMPORTED_LOCATION "${CAF_IO_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${CAF_INCLUDE_DIR}"
      INTERFACE_LINK_LIBRARIES CAF::core)
  endif()
endif()
