# Status, scheduler, validation and program-cache suites. Included from tests/CMakeLists.txt.
#   test_status, test_scheduler: device-free (label unit).
#   test_validation, test_cache:  on a real device (label device, one ctest entry per device config).
# test_cache copies kernels_cl/ with a unique constant appended to time a truly cold build.
if(COMMAND clattn_test)
  clattn_test(test_status LABEL unit)
  clattn_test(test_scheduler LABEL unit)
  clattn_test(test_validation DEVICE)
  clattn_test(test_cache DEVICE)
  target_compile_definitions(test_cache PRIVATE
    CLATTN_TEST_KERNEL_DIR="${PROJECT_SOURCE_DIR}/kernels_cl")
else()
  # Stand-alone form, for a tests/CMakeLists.txt without the clattn_test() helper.
  find_library(CMOCKA_LIB cmocka REQUIRED)
  if(NOT TARGET clattn_testref)
    add_library(clattn_testref STATIC ${CMAKE_CURRENT_SOURCE_DIR}/reference/ref_attention.c)
    target_link_libraries(clattn_testref PUBLIC m)
  endif()
  foreach(t test_status test_scheduler test_validation test_cache)
    add_executable(${t} ${CMAKE_CURRENT_SOURCE_DIR}/${t}.c)
    target_link_libraries(${t} PRIVATE clattn_static clattn_testref ${CMOCKA_LIB} m)
    target_include_directories(${t} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}
      ${PROJECT_SOURCE_DIR}/lib/core ${PROJECT_SOURCE_DIR}/lib/sched)
    target_compile_definitions(${t} PRIVATE _POSIX_C_SOURCE=200809L)
    target_compile_options(${t} PRIVATE ${CLATTN_WARNINGS})
    add_test(NAME ${t} COMMAND ${t})
  endforeach()
  target_compile_definitions(test_cache PRIVATE
    CLATTN_TEST_KERNEL_DIR="${PROJECT_SOURCE_DIR}/kernels_cl")
  set_tests_properties(test_status test_scheduler PROPERTIES LABELS unit)
  set_tests_properties(test_validation test_cache PROPERTIES LABELS device)
endif()
