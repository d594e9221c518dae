#include "campaigns/template.h"

#include <gtest/gtest.h>

namespace salvo::campaigns {
namespace {

Template compileOk(std::string_view source) {
  std::string error;
  std::size_t offset = 0;
  auto t = Template::compile(source, error, offset);
  EXPECT_TRUE(t.has_value()) << source << ": " << error << " at " << offset;
  return t ? std::move(*t) : Template();
}

TEST(TemplateTest, SplitsLiteralsAndFields) {
  const Template t = compileOk("Hello {{name}}, {{ code }}!");
  ASSERT_EQ(t.pieces().size(), 5u);
  EXPECT_EQ(t.pieces()[0].literal, "Hello ");
  EXPECT_EQ(t.pieces()[1].variable, "name");
  EXPECT_EQ(t.pieces()[1].offset, 6u);
  EXPECT_EQ(t.pieces()[2].literal, ", ");
  EXPECT_EQ(t.pieces()[3].variable, "code");
  EXPECT_EQ(t.pieces()[3].offset, 16u);
  EXPECT_EQ(t.pieces()[4].literal, "!");
}

TEST(TemplateTest, NamesAndSpacing) {
  for (std::string_view source : {"{{a}}", "{{ a }}", "{{\ta\t}}", "{{_x}}", "{{first.name}}",
                                  "{{first-name}}", "{{A9_.-}}"}) {
    const Template t = compileOk(source);
    ASSERT_EQ(t.pieces().size(), 1u) << source;
    EXPECT_FALSE(t.pieces()[0].variable.empty()) << source;
  }
  EXPECT_TRUE(compileOk("").pieces().empty());
  EXPECT_EQ(compileOk("just } and { and }}").pieces().size(), 1u);
}

TEST(TemplateTest, SyntaxErrorsCarryTheOffsetOfTheOpeningBraces) {
  const struct {
    std::string_view source;
    std::string error;
    std::size_t offset;
  } cases[] = {
      {"Hi {{name", "unclosed '{{'", 3},
      {"{{a}} and {{", "unclosed '{{'", 10},
      {"x {{}}", "empty merge field", 2},
      {"x {{   }}", "empty merge field", 2},
      {"{{1abc}}",
       "invalid merge field name '1abc' (use a letter or '_', then letters, digits, '_', '.', "
       "'-')",
       0},
      {"ok {{a b}}",
       "invalid merge field name 'a b' (use a letter or '_', then letters, digits, '_', '.', "
       "'-')",
       3},
      {"{{{a}}}",
       "invalid merge field name '{a' (use a letter or '_', then letters, digits, '_', '.', "
       "'-')",
       0},
  };
  for (const auto& c : cases) {
    std::string error;
    std::size_t offset = 99;
    EXPECT_FALSE(Template::compile(c.source, error, offset).has_value()) << c.source;
    EXPECT_EQ(error, c.error) << c.source;
    EXPECT_EQ(offset, c.offset) << c.source;
  }
}

TEST(TemplateTest, BindResolvesIndexesAndReportsUnknown) {
  Template t = compileOk("{{email}} {{name}} {{nmae}} {{code}} {{other}}");
  const auto unknown = t.bind({"code", "name"});
  ASSERT_EQ(unknown.size(), 2u);
  EXPECT_EQ(unknown[0]->variable, "nmae");
  EXPECT_EQ(unknown[0]->offset, 19u);
  EXPECT_EQ(unknown[1]->variable, "other");
  EXPECT_EQ(t.pieces()[0].index, Template::kEmail);
  EXPECT_EQ(t.pieces()[2].index, 1);
  EXPECT_EQ(t.pieces()[6].index, 0);
}

TEST(TemplateTest, RendersValuesAndEmail) {
  Template t = compileOk("Dear {{name}} <{{email}}>: {{code}}{{code}}.");
  ASSERT_TRUE(t.bind({"name", "code"}).empty());
  std::string out = "prefix|";
  t.render("ann@example.com", {"Ann", "Z9"}, out);
  EXPECT_EQ(out, "prefix|Dear Ann <ann@example.com>: Z9Z9.");
  // Values carry no template meaning.
  out.clear();
  t.render("b@x.com", {"{{code}}", ""}, out);
  EXPECT_EQ(out, "Dear {{code}} <b@x.com>: .");
  // A job with fewer values than variables renders the missing ones empty.
  out.clear();
  t.render("b@x.com", {"Bo"}, out);
  EXPECT_EQ(out, "Dear Bo <b@x.com>: .");
}

TEST(TemplateDeathTest, RenderingUnboundTemplateAborts) {
  const Template t = compileOk("{{name}}");
  std::string out;
  EXPECT_DEATH(t.render("a@x.com", {"v"}, out), "before bind");
}

}  // namespace
}  // namespace salvo::campaigns

namespace salvo::campaigns {
namespace {

std::string renderWith(std::string_view source, const std::vector<std::string>& values,
                       Template::Escape escape = Template::Escape::None) {
  std::string error;
  std::size_t offset = 0;
  auto t = Template::compile(source, error, offset);
  EXPECT_TRUE(t.has_value()) << error;
  if (!t) {
    return {};
  }
  EXPECT_TRUE(t->bind({"name", "city"}).empty());
  std::string out;
  t->render("ann@x.org", values, out, escape);
  return out;
}

TEST(TemplateDefaultTest, DefaultAppliesWhenTheValueIsEmpty) {
  EXPECT_EQ(renderWith("Hi {{name | default: \"friend\"}}!", {"", ""}), "Hi friend!");
  EXPECT_EQ(renderWith("Hi {{name | default: \"friend\"}}!", {"Ann", ""}), "Hi Ann!");
  EXPECT_EQ(renderWith("Hi {{ name|default:'a \\'b\\' \\\\ c' }}", {"", ""}), "Hi a 'b' \\ c");
  EXPECT_EQ(renderWith("{{city | default: \"\"}}", {"", ""}), "");
  EXPECT_EQ(renderWith("{{name | default: \"a|b\"}}", {"", ""}), "a|b");
}

TEST(TemplateDefaultTest, HtmlEscapingAppliesToValuesAndDefaultsNotToLiterals) {
  EXPECT_EQ(renderWith("<b>{{name}}</b>", {"<Tom & \"Jerry\" 'x'>", ""}, Template::Escape::Html),
            "<b>&lt;Tom &amp; &quot;Jerry&quot; &#39;x&#39;&gt;</b>");
  EXPECT_EQ(renderWith("<p>{{name | default: \"A&B\"}}</p>", {"", ""}, Template::Escape::Html),
            "<p>A&amp;B</p>");
  EXPECT_EQ(renderWith("{{name}} & {{email}}", {"<x>", ""}), "<x> & ann@x.org");
}

TEST(TemplateDefaultTest, FilterSyntaxErrors) {
  const struct {
    std::string_view source;
    std::string error;
  } cases[] = {
      {"{{name | upcase}}",
       "unknown filter 'upcase' in 'name' (only 'default: \"text\"' is supported)"},
      {"{{name | default \"x\"}}",
       "expected ':' after 'default' in 'name' (write default: \"text\")"},
      {"{{name | default: friend}}",
       "the default of 'name' must be a quoted string, e.g. default: \"friend\""},
      {"{{name | default: \"friend}}", "the default of 'name' has no closing quote"},
      {"{{name | default: \"a\" b}}", "unexpected 'b' after the default of 'name'"},
      {"{{ | default: \"a\"}}",
       "invalid merge field name '' (use a letter or '_', then letters, digits, '_', '.', '-')"},
  };
  for (const auto& c : cases) {
    std::string error;
    std::size_t offset = 99;
    EXPECT_FALSE(Template::compile(c.source, error, offset).has_value()) << c.source;
    EXPECT_EQ(error, c.error) << c.source;
    EXPECT_EQ(offset, 0u) << c.source;
  }
}

}  // namespace
}  // namespace salvo::campaigns
