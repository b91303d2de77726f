# The tests that need Redis servers: `datacap_redis_tests`, built from every *_redis_test.cpp
# plus src/store/store_test.cpp compiled with DATACAP_STORE_TEST_REDIS (the EveryStore
# conformance suite instantiated on a standalone server and on a cluster instead of the
# in-process stores). ctest starts the servers first (scripts/redis-servers.sh, fixture
# `redis`) and stops them after; the tests find them through DATACAP_REDIS_ENV (urls.env).
# Included from the tests block of CMakeLists.txt (GoogleTest is found, GoogleTest included).
file(GLOB_RECURSE DATACAP_REDIS_TEST_SOURCES CONFIGURE_DEPENDS
  ${PROJECT_SOURCE_DIR}/src/*_redis_test.cpp ${PROJECT_SOURCE_DIR}/tests/*_redis_test.cpp)
add_executable(datacap_redis_tests ${DATACAP_REDIS_TEST_SOURCES}
  ${PROJECT_SOURCE_DIR}/src/store/store_test.cpp)
target_include_directories(datacap_redis_tests PRIVATE ${PROJECT_SOURCE_DIR}/tests)
target_link_libraries(datacap_redis_tests PRIVATE datacap_internal GTest::gtest GTest::gtest_main)
target_compile_definitions(datacap_redis_tests PRIVATE
  DATACAP_STORE_TEST_REDIS
  DATACAP_VECTORS_DIR="${DATACAP_VECTORS_DIR}"
  DATACAP_REDIS_SERVERS_SCRIPT="${PROJECT_SOURCE_DIR}/scripts/redis-servers.sh"
  $<$<BOOL:${DATACAP_BUILD_CLI}>:DATACAP_CLI_PATH="$<TARGET_FILE:datacap_cli>">)
if(DATACAP_BUILD_CLI)
  add_dependencies(datacap_redis_tests datacap_cli)  # the fault tests run the CLI
endif()

set(DATACAP_REDIS_SERVERS_DIR ${CMAKE_BINARY_DIR}/redis-servers)
add_test(NAME RedisServers.Start
  COMMAND ${PROJECT_SOURCE_DIR}/scripts/redis-servers.sh start ${DATACAP_REDIS_SERVERS_DIR})
set_tests_properties(RedisServers.Start PROPERTIES FIXTURES_SETUP redis RESOURCE_LOCK redis
  TIMEOUT 120)
add_test(NAME RedisServers.Stop
  COMMAND ${PROJECT_SOURCE_DIR}/scripts/redis-servers.sh stop ${DATACAP_REDIS_SERVERS_DIR})
set_tests_properties(RedisServers.Stop PROPERTIES FIXTURES_CLEANUP redis RESOURCE_LOCK redis
  TIMEOUT 60)
# Listing the tests runs the binary without servers: only the running needs them.
gtest_discover_tests(datacap_redis_tests DISCOVERY_TIMEOUT 60
  PROPERTIES FIXTURES_REQUIRED redis RESOURCE_LOCK redis TIMEOUT 900
  ENVIRONMENT DATACAP_REDIS_ENV=${DATACAP_REDIS_SERVERS_DIR}/urls.env)
