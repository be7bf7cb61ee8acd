# Install rules and the CMake package (find_package(statefold)) for statefold.
#
# Each target in STATEFOLD_INSTALL_TARGETS is installed and exported as
# statefold::<name>, <name> being the target name without its "statefold_"
# prefix (statefold_runtime -> statefold::runtime). Its public headers are taken
# from <name>/include/statefold/ when that folder exists and installed to
# include/statefold/. To ship another library, add it to the list below.
#
# Included from the top-level CMakeLists.txt (after the targets are defined).

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# Install by default only when statefold is the top-level project; a service
# that add_subdirectory()s statefold and links it statically needs none of it.
option(STATEFOLD_INSTALL "Generate statefold's install rules" ${statefold_top_level})

set(STATEFOLD_INSTALL_TARGETS statefold_runtime)
list(APPEND STATEFOLD_INSTALL_TARGETS statefold_actors statefold_http statefold_stores statefold_testing)

if(NOT STATEFOLD_INSTALL)
  return()
endif()

set(STATEFOLD_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/statefold"
    CACHE STRING "Where statefoldConfig.cmake is installed, relative to the prefix")
mark_as_advanced(STATEFOLD_INSTALL_CMAKEDIR)

set(STATEFOLD_EXPORTED_COMPONENTS "")
foreach(_sf_target IN LISTS STATEFOLD_INSTALL_TARGETS)
  if(NOT TARGET ${_sf_target})
    message(FATAL_ERROR "cmake/install.cmake: STATEFOLD_INSTALL_TARGETS names "
                        "'${_sf_target}', which is not a target")
  endif()
  # statefold_warnings is build-only and not exported; linked bare, even PRIVATE,
  # a static library would drag it into the export set and generation fails.
  get_target_property(_sf_links ${_sf_target} LINK_LIBRARIES)
  get_target_property(_sf_type ${_sf_target} TYPE)
  if(_sf_type STREQUAL "STATIC_LIBRARY" AND _sf_links AND "statefold_warnings" IN_LIST _sf_links)
    message(FATAL_ERROR "${_sf_target} links statefold_warnings directly, which cannot be "
      "exported; link it as: target_link_libraries(${_sf_target} PRIVATE "
      "$<BUILD_INTERFACE:statefold_warnings>)")
  endif()
  string(REGEX REPLACE "^statefold_" "" _sf_name "${_sf_target}")
  list(APPEND STATEFOLD_EXPORTED_COMPONENTS ${_sf_name})
  set_target_properties(${_sf_target} PROPERTIES EXPORT_NAME ${_sf_name})

  install(TARGETS ${_sf_target}
    EXPORT statefoldTargets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT statefold_development
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT statefold_runtime
            NAMELINK_COMPONENT statefold_development
    RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT statefold_runtime
    INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

  set(_sf_headers "${PROJECT_SOURCE_DIR}/${_sf_name}/include/statefold")
  if(IS_DIRECTORY "${_sf_headers}")
    install(DIRECTORY "${_sf_headers}"
      DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
      COMPONENT statefold_development
      FILES_MATCHING PATTERN "*.hpp" PATTERN "*.h")
  endif()
endforeach()
unset(_sf_target)
unset(_sf_name)
unset(_sf_headers)
unset(_sf_links)
unset(_sf_type)

install(EXPORT statefoldTargets
  NAMESPACE statefold::
  FILE statefoldTargets.cmake
  DESTINATION ${STATEFOLD_INSTALL_CMAKEDIR}
  COMPONENT statefold_development)

configure_package_config_file(
  ${PROJECT_SOURCE_DIR}/cmake/statefoldConfig.cmake.in
  ${PROJECT_BINARY_DIR}/statefoldConfig.cmake
  INSTALL_DESTINATION ${STATEFOLD_INSTALL_CMAKEDIR})

write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/statefoldConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMajorVersion)

install(FILES
    ${PROJECT_BINARY_DIR}/statefoldConfig.cmake
    ${PROJECT_BINARY_DIR}/statefoldConfigVersion.cmake
    ${PROJECT_SOURCE_DIR}/cmake/FindCAF.cmake
  DESTINATION ${STATEFOLD_INSTALL_CMAKEDIR}
  COMPONENT statefold_development)
