#include "common/unique_fd.h"

namespace kiln {

Result<Pipe> make_pipe(int flags) {
  int fds[2];
  if (::pipe2(fds, flags) != 0) return errno_error("cannot create a pipe");
  return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

}  // namespace kiln
