# Runs `linac check` twice against an empty cache directory: the first compiles with NVRTC, the
# second must find every kernel on disk (0 compiled).
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
set(ENV{LINA_CACHE_DIR} ${WORK})
execute_process(COMMAND ${LINAC} check ${PROGRAM} --shape 1,100,2 --dims K=64,V=64 --cache-stats
                OUTPUT_VARIABLE first ERROR_VARIABLE first_err RESULT_VARIABLE rc1)
if(first_err MATCHES "needs a GPU")
  message("SKIP: no GPU")
  return()
endif()
execute_process(COMMAND ${LINAC} check ${PROGRAM} --shape 1,100,2 --dims K=64,V=64 --cache-stats
                OUTPUT_VARIABLE second ERROR_VARIABLE second_err RESULT_VARIABLE rc2)
message("first run:\n${first}${first_err}second run:\n${second}${second_err}")
if(NOT rc1 EQUAL 0 OR NOT rc2 EQUAL 0)
  message(FATAL_ERROR "linac check failed")
endif()
if(NOT first MATCHES "cache: 1 compiled")
  message(FATAL_ERROR "the first run should compile once")
endif()
if(NOT second MATCHES "cache: 0 compiled, 1 from disk")
  message(FATAL_ERROR "the second run should load from disk with no NVRTC call")
endif()
