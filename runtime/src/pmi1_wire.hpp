// pmi1_wire.hpp - the lines of MPICH's simple PMI-1 wire protocol: parsing a request line
// into a command and its attributes, and writing a reply line.
//
//   auto c = parse_pmi1_line("cmd=get kvsname=kvs_1 key=k");   // c.name() == "get"
//   std::string v = c.at("key");                                // "k"
//   std::string reply = pmi1_line("get_result", {{"rc", "0"}, {"value", "v"}});
//
// A line is words separated by spaces, each word `attribute=value`, the first one `cmd=<name>`
// (what MPICH's simple PMI client sends: values never hold spaces; it hex-encodes binary
// data). The '\n' that ends a line on the socket is not part of what is parsed here.
//
// Notes:
// - parse_pmi1_line never crashes or reads past its input: a line that is too long, empty,
//   has a word without '=' or with an empty attribute name, repeats an attribute, holds a
//   control character, or does not start with cmd= throws dragonx::error(malformed_message)
//   whose message says which. `mcmd=` lines (PMI_Spawn_multiple) are refused the same way,
//   with a message saying spawning is not supported.
// - Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dragonx::rt::detail {

/// The longest request line accepted (without its '\n'). MPICH's longest are `put`s of a
/// value of vallen_max (1024) characters with a key and a kvsname.
inline constexpr std::size_t pmi1_max_line = 4096;

/// One parsed request line.
class pmi1_command {
public:
    using attribute = std::pair<std::string, std::string>;

    explicit pmi1_command(std::vector<attribute> attributes) : attributes_(std::move(attributes))
    {
    }

    /// The command: the value of `cmd`.
    [[nodiscard]] const std::string& name() const { return attributes_.front().second; }
    /// The value of `attribute`, or nullptr if the line has none.
    [[nodiscard]] const std::string* find(std::string_view attribute) const;
    /// The value of `attribute`. Throws errc::malformed_message naming the command and the
    /// missing attribute.
    [[nodiscard]] const std::string& at(std::string_view attribute) const;
    /// The value of `attribute` as a non-negative int. Throws errc::malformed_message if it is
    /// missing or not a decimal number that fits.
    [[nodiscard]] int number(std::string_view attribute) const;

private:
    std::vector<attribute> attributes_;  // attributes_[0] is {"cmd", name}
};

/// Parses one request line (without '\n'). Throws errc::malformed_message (see Notes).
[[nodiscard]] pmi1_command parse_pmi1_line(std::string_view line);

/// "cmd=<name> a=1 b=2\n". Attribute values must not hold spaces or newlines (a caller's
/// bug: errc::internal).
[[nodiscard]] std::string pmi1_line(
    std::string_view name,
    std::initializer_list<std::pair<std::string_view, std::string_view>> attributes = {});

/// `text` with every character that cannot appear in a reply value (space, control
/// characters, '=') replaced by '_': for error messages sent to a client as msg=...
[[nodiscard]] std::string pmi1_word(std::string_view text);

}  // namespace dragonx::rt::detail
