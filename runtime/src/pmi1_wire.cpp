// pmi1_wire.cpp - parsing and writing PMI-1 wire lines.
#include "pmi1_wire.hpp"

#include <charconv>

#include <fmt/format.h>

#include <dragonx/common/error.hpp>

namespace dragonx::rt::detail {

namespace {

[[noreturn]] void malformed(const std::string& why)
{
    throw_error(errc::malformed_message, "malformed PMI-1 line: " + why);
}

bool is_control(char c)
{
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
}

}  // namespace

const std::string* pmi1_command::find(std::string_view attribute) const
{
    for (const auto& [key, value] : attributes_) {
        if (key == attribute) {
            return &value;
        }
    }
    return nullptr;
}

const std::string& pmi1_command::at(std::string_view attribute) const
{
    const auto* value = find(attribute);
    if (value == nullptr) {
        throw_error(errc::malformed_message,
                    fmt::format("PMI-1 command {} lacks its {}= attribute", name(), attribute));
    }
    return *value;
}

int pmi1_command::number(std::string_view attribute) const
{
    const auto& text = at(attribute);
    int value = 0;
    const auto* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || ec != std::errc{} || ptr != end || value < 0) {
        throw_error(errc::malformed_message,
                    fmt::format("PMI-1 command {}: {}={} is not a non-negative number", name(),
                                attribute, text.substr(0, 32)));
    }
    return value;
}

pmi1_command parse_pmi1_line(std::string_view line)
{
    if (line.size() > pmi1_max_line) {
        malformed(fmt::format("{} bytes, longer than the limit of {}", line.size(),
                              pmi1_max_line));
    }
    if (!line.empty() && line.back() == '\r') {
        line.remove_suffix(1);
    }
    for (const char c : line) {
        if (is_control(c)) {
            malformed(fmt::format("control character 0x{:02x}", static_cast<unsigned char>(c)));
        }
    }
    std::vector<pmi1_command::attribute> attributes;
    std::size_t pos = 0;
    while (pos < line.size()) {
        if (line[pos] == ' ') {
            ++pos;
            continue;
        }
        const auto end = std::min(line.find(' ', pos), line.size());
        const auto word = line.substr(pos, end - pos);
        pos = end;
        const auto eq = word.find('=');
        if (eq == std::string_view::npos) {
            malformed(fmt::format("word '{}' is not attribute=value", word.substr(0, 64)));
        }
        if (eq == 0) {
            malformed(fmt::format("word '{}' has no attribute name", word.substr(0, 64)));
        }
        std::string key(word.substr(0, eq));
        for (const auto& seen : attributes) {
            if (seen.first == key) {
                malformed(fmt::format("attribute {} given twice", key.substr(0, 64)));
            }
        }
        attributes.emplace_back(std::move(key), std::string(word.substr(eq + 1)));
    }
    if (attributes.empty()) {
        malformed("empty line");
    }
    if (attributes.front().first == "mcmd") {
        malformed("multi-line commands (mcmd=, PMI_Spawn_multiple) are not supported");
    }
    if (attributes.front().first != "cmd" || attributes.front().second.empty()) {
        malformed(fmt::format("it starts with '{}=', not cmd=<command>",
                              attributes.front().first.substr(0, 64)));
    }
    return pmi1_command(std::move(attributes));
}

std::string pmi1_line(
    std::string_view name,
    std::initializer_list<std::pair<std::string_view, std::string_view>> attributes)
{
    std::string line = "cmd=";
    line += name;
    for (const auto& [key, value] : attributes) {
        if (value.find_first_of(" \n") != std::string_view::npos) {
            throw_error(errc::internal, fmt::format("PMI-1 reply {}: value of {} holds a space "
                                                    "or newline",
                                                    name, key));
        }
        line += ' ';
        line += key;
        line += '=';
        line += value;
    }
    line += '\n';
    return line;
}

std::string pmi1_word(std::string_view text)
{
    std::string out(text);
    for (auto& c : out) {
        if (c == ' ' || c == '=' || is_control(c)) {
            c = '_';
        }
    }
    return out;
}

}  // namespace dragonx::rt::detail
