// output_printer.hpp - prints forwarded output of managed processes on the launcher's
// stdout/stderr, labelled as --label asks.
//
//   none     the line as the process wrote it
//   basic    "[stdout: puid 4294967296] line"
//   verbose  "[stdout: puid 4294967296 @ node2] line"
//
// Notes:
// - stdout output goes to fd 1 and stderr output to fd 2, each line whole (daemons forward
//   whole lines; a final line without '\n' gets one when labelled).
// - Writes with write(2) straight away (no stdio buffering): nothing waits in a buffer when
//   the launcher exits. A closed stdout (EPIPE) is ignored.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <dragonx/runtime/messages.hpp>

#include "options.hpp"

namespace dragonx::launcher {

class output_printer {
public:
    output_printer(label_mode mode, std::vector<std::string> hostnames, int out_fd = 1,
                   int err_fd = 2);

    void print(const rt::msg::output& chunk);

    /// The text print() writes for `chunk` (for tests).
    [[nodiscard]] std::string format(const rt::msg::output& chunk) const;

private:
    label_mode mode_;
    std::vector<std::string> hostnames_;  // by node index
    int out_fd_;
    int err_fd_;
};

}  // namespace dragonx::launcher
