// output_printer.cpp - labelled printing of forwarded output.
#include "output_printer.hpp"

#include <cerrno>
#include <unistd.h>

#include <fmt/format.h>

namespace dragonx::launcher {

output_printer::output_printer(label_mode mode, std::vector<std::string> hostnames, int out_fd,
                               int err_fd)
    : mode_(mode), hostnames_(std::move(hostnames)), out_fd_(out_fd), err_fd_(err_fd)
{
}

std::string output_printer::format(const rt::msg::output& chunk) const
{
    if (mode_ == label_mode::none) {
        return chunk.data;
    }
    const char* stream = chunk.stream == rt::output_stream::err ? "stderr" : "stdout";
    std::string prefix;
    if (mode_ == label_mode::basic) {
        prefix = fmt::format("[{}: puid {}] ", stream, chunk.puid);
    } else {
        const std::string host = chunk.node < hostnames_.size() ? hostnames_[chunk.node]
                                                                : fmt::format("node{}", chunk.node);
        prefix = fmt::format("[{}: puid {} @ {}] ", stream, chunk.puid, host);
    }
    std::string text;
    text.reserve(chunk.data.size() + prefix.size() * 2);
    std::size_t at = 0;
    while (at < chunk.data.size()) {
        auto end = chunk.data.find('\n', at);
        end = end == std::string::npos ? chunk.data.size() : end + 1;
        text += prefix;
        text.append(chunk.data, at, end - at);
        at = end;
    }
    if (!text.empty() && text.back() != '\n') {
        text += '\n';
    }
    return text;
}

void output_printer::print(const rt::msg::output& chunk)
{
    const std::string text = format(chunk);
    const int fd = chunk.stream == rt::output_stream::err ? err_fd_ : out_fd_;
    std::size_t done = 0;
    while (done < text.size()) {
        const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return; // stdout closed: nothing more to do with this output
        }
        done += static_cast<std::size_t>(n);
    }
}

} // namespace dragonx::launcher
