# Included at project() (CMAKE_PROJECT_INCLUDE) by the builds of ROS interface packages against the ROS wheels
# (scripts/build_interfaces.sh, test/test_detections_topics.py, test/test_colcon.py). The ROS wheels' exported CMake targets name the
# Python and numpy include folders of the machine that built the wheels (e.g. /opt/python/cp311-cp311/...), which do
# not exist here, and CMake refuses a target with a missing include folder. At the end of configuring, each such
# folder is replaced by this interpreter's (STN_PYTHON_INCLUDE, STN_NUMPY_INCLUDE).
function(stn_wheel_include_dirs)
  get_property(targets DIRECTORY ${CMAKE_SOURCE_DIR} PROPERTY IMPORTED_TARGETS)
  foreach(target IN LISTS targets)
    get_target_property(dirs ${target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT dirs)
      continue()
    endif()
    set(fixed "")
    foreach(dir IN LISTS dirs)
      if(NOT EXISTS "${dir}" AND dir MATCHES "/include/python3\\.[0-9]+$")
        set(dir "${STN_PYTHON_INCLUDE}")
      elseif(NOT EXISTS "${dir}" AND dir MATCHES "/numpy/_core/include$")
        set(dir "${STN_NUMPY_INCLUDE}")
      endif()
      list(APPEND fixed "${dir}")
    endforeach()
    set_target_properties(${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${fixed}")
  endforeach()
endfunction()
cmake_language(DEFER DIRECTORY ${CMAKE_SOURCE_DIR} CALL stn_wheel_include_dirs)
