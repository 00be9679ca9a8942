# A command-line test (CMakeLists.txt, lory_cli_test): runs EXE with ARGS (a
# space-separated string) and passes when it exits with CODE and its output
# (stdout and stderr together) matches the regular expression EXPECT.
#
#   cmake -D EXE=build/bin/lory_info -D ARGS=--help -D CODE=0 -D EXPECT=lory_info -P tests/cli_check.cmake
separate_arguments(args UNIX_COMMAND "${ARGS}")
execute_process(COMMAND "${EXE}" ${args}
  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc TIMEOUT 60)
set(shown "$ ${EXE} ${ARGS}\n${out}${err}")
if(NOT rc STREQUAL "${CODE}")
  message(FATAL_ERROR "exit code ${rc}, expected ${CODE}:\n${shown}")
endif()
if(NOT "${out}${err}" MATCHES "${EXPECT}")
  message(FATAL_ERROR "the output does not match \"${EXPECT}\":\n${shown}")
endif()
