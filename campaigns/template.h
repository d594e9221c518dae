// Templates with {{var}} merge fields, compiled once per campaign, rendered per recipient.
// Contract: compile() reports syntax errors with the byte offset of the problem; render()
// appends to the output without allocating per piece. Variable lookup is by index into
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
    std::string literal;     // used when variable is empty
    std::string variable;    // variable name
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
  void render(std::string_view email, const std::vector<std::string>& values,
              std::string& out) const;
  const std::vector<Piece>& pieces() const { return pieces_; }

 private:
  std::vector<Piece> pieces_;
};

}  // namespace salvo::campaigns
