# Writes version.cpp with the current git revision, touching it only when the text changes.
execute_process(COMMAND git -C "${REPO}" describe --always --dirty --abbrev=12
                OUTPUT_VARIABLE MS_GIT_REVISION OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT MS_GIT_REVISION)
  set(MS_GIT_REVISION "unknown")
endif()
configure_file("${SRC}" "${DST}.new" @ONLY)
file(COPY_FILE "${DST}.new" "${DST}" ONLY_IF_DIFFERENT)
