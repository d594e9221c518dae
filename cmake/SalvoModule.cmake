# salvo_module(NAME DIR [DEPS ...]): a static library of every .cpp directly in DIR.
# Sources are globbed so that adding a file needs no CMake edit; CONFIGURE_DEPENDS
# re-runs the glob on each build.
function(salvo_module name dir)
  file(GLOB srcs CONFIGURE_DEPENDS ${dir}/*.cpp)
  if(srcs)
    add_library(${name} STATIC ${srcs})
    target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
    target_link_libraries(${name} PUBLIC ${ARGN})
  else()
    # A module with headers only (so far): still a target others can link.
    add_library(${name} INTERFACE)
    target_include_directories(${name} INTERFACE ${PROJECT_SOURCE_DIR})
    target_link_libraries(${name} INTERFACE ${ARGN})
  endif()
endfunction()

# salvo_test(NAME DIR [DEPS ...]): one GoogleTest binary of every *_test.cpp under DIR
# (recursively), registered with ctest test by test.
function(salvo_test name dir)
  file(GLOB_RECURSE srcs CONFIGURE_DEPENDS ${dir}/*_test.cpp)
  if(NOT srcs)
    return()
  endif()
  add_executable(${name} ${srcs})
  target_link_libraries(${name} PRIVATE GTest::gtest_main GTest::gmock ${ARGN})
  target_compile_definitions(${name} PRIVATE
    SALVO_SOURCE_DIR="${PROJECT_SOURCE_DIR}" SALVO_BINARY_DIR="${PROJECT_BINARY_DIR}")
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 300)
endfunction()
