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

// The default's quoted string, starting at the opening quote. Sets `out` and `rest` (what
// follows the closing quote).
bool parseQuoted(std::string_view text, std::string& out, std::string_view& rest) {
  const char quote = text.front();
  out.clear();
  for (std::size_t i = 1; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\\' && i + 1 < text.size() && (text[i + 1] == quote || text[i + 1] == '\\')) {
      out += text[++i];
    } else if (c == quote) {
      rest = text.substr(i + 1);
      return true;
    } else {
      out += c;
    }
  }
  return false;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && isSpace(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && isSpace(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

// The text between "{{" and "}}": a name, optionally "| default: "text"".
bool parseField(std::string_view inner, Template::Piece& piece, std::string& error) {
  inner = trim(inner);
  if (inner.empty()) {
    error = "empty merge field";
    return false;
  }
  std::string_view filter;
  const std::size_t bar = inner.find('|');
  if (bar != std::string_view::npos) {
    filter = trim(inner.substr(bar + 1));
    inner = trim(inner.substr(0, bar));
  }
  bool valid = !inner.empty() && isNameStart(inner.front());
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
  if (bar == std::string_view::npos) {
    return true;
  }
  constexpr std::string_view kDefault = "default";
  std::size_t nameEnd = 0;
  while (nameEnd < filter.size() && isNameChar(filter[nameEnd])) {
    ++nameEnd;
  }
  if (filter.substr(0, nameEnd) != kDefault) {
    error = fmt::format("unknown filter '{}' in '{}' (only 'default: \"text\"' is supported)",
                        filter.substr(0, nameEnd), piece.variable);
    return false;
  }
  std::string_view rest = trim(filter.substr(nameEnd));
  if (rest.empty() || rest.front() != ':') {
    error = fmt::format("expected ':' after 'default' in '{}' (write default: \"text\")",
                        piece.variable);
    return false;
  }
  rest = trim(rest.substr(1));
  if (rest.empty() || (rest.front() != '"' && rest.front() != '\'')) {
    error = fmt::format("the default of '{}' must be a quoted string, e.g. default: \"friend\"",
                        piece.variable);
    return false;
  }
  std::string_view after;
  if (!parseQuoted(rest, piece.fallback, after)) {
    error = fmt::format("the default of '{}' has no closing quote", piece.variable);
    return false;
  }
  if (!trim(after).empty()) {
    error = fmt::format("unexpected '{}' after the default of '{}'", trim(after), piece.variable);
    return false;
  }
  piece.hasDefault = true;
  return true;
}

void appendEscaped(std::string& out, std::string_view value, Template::Escape escape) {
  if (escape == Template::Escape::None) {
    out += value;
    return;
  }
  std::size_t start = 0;
  for (std::size_t i = 0; i < value.size(); ++i) {
    const char* replacement = nullptr;
    switch (value[i]) {
      case '&':
        replacement = "&amp;";
        break;
      case '<':
        replacement = "&lt;";
        break;
      case '>':
        replacement = "&gt;";
        break;
      case '"':
        replacement = "&quot;";
        break;
      case '\'':
        replacement = "&#39;";
        break;
      default:
        continue;
    }
    out.append(value.data() + start, i - start);
    out += replacement;
    start = i + 1;
  }
  out.append(value.data() + start, value.size() - start);
}

}  // namespace

std::optional<Template> Template::compile(std::string_view source, std::string& error,
                                          std::size_t& errorOffset) {
  Template t;
  std::size_t pos = 0;
  while (pos < source.size()) {
    const std::size_t open = source.find("{{", pos);
    if (open == std::string_view::npos) {
      t.pieces_.push_back(Piece{std::string(source.substr(pos)), {}, {}, false, pos, -1});
      break;
    }
    if (open > pos) {
      t.pieces_.push_back(
          Piece{std::string(source.substr(pos, open - pos)), {}, {}, false, pos, -1});
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
                      std::string& out, Escape escape) const {
  for (const Piece& piece : pieces_) {
    if (piece.variable.empty()) {
      out += piece.literal;
      continue;
    }
    std::string_view value;
    if (piece.index == kEmail) {
      value = email;
    } else if (piece.index >= 0) {
      // A job carrying fewer values than the campaign has variables renders them empty.
      if (static_cast<std::size_t>(piece.index) < values.size()) {
        value = values[piece.index];
      }
    } else {
      // Rendering an unbound template is a programming error, not bad input.
      std::fprintf(stderr, "salvo: template field '%s' rendered before bind()\n",
                   piece.variable.c_str());
      std::abort();
    }
    if (value.empty() && piece.hasDefault) {
      value = piece.fallback;
    }
    appendEscaped(out, value, escape);
  }
}

bool Template::uses(std::string_view variable) const {
  for (const Piece& piece : pieces_) {
    if (piece.variable == variable) {
      return true;
    }
  }
  return false;
}

}  // namespace salvo::campaigns
