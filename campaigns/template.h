// Templates with {{var}} merge fields, compiled once per campaign, rendered per recipient.
// A field may carry a default used when the value is empty: {{name | default: "friend"}}
// (the default is a double- or single-quoted string; \" and \\ escape inside it).
// Contract: compile() reports syntax errors with the byte offset of the problem; render()
// appends to the output without allocating per piece, HTML-escaping values (and defaults)
// when asked; literal template text is never escaped. Variable lookup is by index into
// the campaign's variable list ("email" is index kEmail), resolved at compile time by
// bind(), so rendering never looks names up.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace salvo::campaigns {

class Template {
 public:
  struct Piece {
    std::string literal;   // used when variable is empty
    std::string variable;  // variable name
    std::string fallback;  // the default, when hasDefault
    bool hasDefault = false;
    std::size_t offset = 0;  // byte offset of "{{" in the source (for error positions)
    int index = -1;          // after bind(): index into values, or kEmail
  };
  static constexpr int kEmail = -2;

  Template() = default;
  // Parses `source`. On error returns nullopt, sets `error` and `errorOffset`.
  static std::optional<Template> compile(std::string_view source, std::string& error,
                                         std::size_t& errorOffset);
  // Resolves variable names against `variables` (plus "email"). Returns the pieces whose
  // variable is unknown (empty when all are known).
  std::vector<const Piece*> bind(const std::vector<std::string>& variables);
  enum class Escape { None, Html };
  void render(std::string_view email, const std::vector<std::string>& values, std::string& out,
              Escape escape = Escape::None) const;
  // True when some field names `variable`.
  bool uses(std::string_view variable) const;
  const std::vector<Piece>& pieces() const { return pieces_; }

 private:
  std::vector<Piece> pieces_;
};

}  // namespace salvo::campaigns
