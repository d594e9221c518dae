#include "campaigns/template.h"

#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

namespace salvo::campaigns {

namespace {

bool isNameStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

bool isNameChar(char c) {
  return isNameStart(c) || (c >= '0' && c <= '9') || c == '.' || c == '-';
}

bool isSpace(char c) {
  return c == ' ' || c == '\t';
}

// The text between "{{" and "}}". Today a field is just a name; filters
// ("name | default: ...") will be parsed here and stored in the Piece.
bool parseField(std::string_view inner, Template::Piece& piece, std::string& error) {
  while (!inner.empty() && isSpace(inner.front())) {
    inner.remove_prefix(1);
  }
  while (!inner.empty() && isSpace(inner.back())) {
    inner.remove_suffix(1);
  }
  if (inner.empty()) {
    error = "empty merge field";
    return false;
  }
  bool valid = isNameStart(inner.front());
  for (char c : inner) {
    valid = valid && isNameChar(c);
  }
  if (!valid) {
    error = fmt::format(
        "invalid merge field name '{}' (use a letter or '_', then letters, digits, '_', '.', "
        "'-')",
        inner);
    return false;
  }
  piece.variable.assign(inner);
  return true;
}

}  // namespace

std::optional<Template> Template::compile(std::string_view source, std::string& error,
                                          std::size_t& errorOffset) {
  Template t;
  std::size_t pos = 0;
  while (pos < source.size()) {
    const std::size_t open = source.find("{{", pos);
    if (open == std::string_view::npos) {
      t.pieces_.push_back(Piece{std::string(source.substr(pos)), {}, pos, -1});
      break;
    }
    if (open > pos) {
      t.pieces_.push_back(Piece{std::string(source.substr(pos, open - pos)), {}, pos, -1});
    }
    const std::size_t close = source.find("}}", open + 2);
    if (close == std::string_view::npos) {
      error = "unclosed '{{'";
      errorOffset = open;
      return std::nullopt;
    }
    Piece field;
    field.offset = open;
    if (!parseField(source.substr(open + 2, close - open - 2), field, error)) {
      errorOffset = open;
      return std::nullopt;
    }
    t.pieces_.push_back(std::move(field));
    pos = close + 2;
  }
  return t;
}

std::vector<const Template::Piece*> Template::bind(const std::vector<std::string>& variables) {
  std::vector<const Piece*> unknown;
  for (Piece& piece : pieces_) {
    if (piece.variable.empty()) {
      continue;
    }
    piece.index = -1;
    if (piece.variable == "email") {
      piece.index = kEmail;
      continue;
    }
    for (std::size_t i = 0; i < variables.size(); ++i) {
      if (variables[i] == piece.variable) {
        piece.index = static_cast<int>(i);
        break;
      }
    }
    if (piece.index == -1) {
      unknown.push_back(&piece);
    }
  }
  return unknown;
}

void Template::render(std::string_view email, const std::vector<std::string>& values,
                      std::string& out) const {
  for (const Piece& piece : pieces_) {
    if (piece.variable.empty()) {
      out += piece.literal;
    } else if (piece.index == kEmail) {
      out += email;
    } else if (piece.index >= 0) {
      // A job carrying fewer values than the campaign has variables renders them empty.
      if (static_cast<std::size_t>(piece.index) < values.size()) {
        out += values[piece.index];
      }
    } else {
      // Rendering an unbound template is a programming error, not bad input.
      std::fprintf(stderr, "salvo: template field '%s' rendered before bind()\n",
                   piece.variable.c_str());
      std::abort();
    }
  }
}

}  // namespace salvo::campaigns
