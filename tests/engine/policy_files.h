// Where the shipped policy files are, for tests that compare them with the built-in
// defaults. The engine_test target has no SALVO_SOURCE_DIR definition, so the path is
// derived from this header's own (absolute: CMake compiles with absolute paths).
#pragma once

#include <filesystem>
#include <string>

namespace salvo::engine::testing {

inline std::string shippedPolicyFile(const std::string& name) {
  const std::filesystem::path root =
      std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
  return (root / "examples" / "policy" / name).string();
}

}  // namespace salvo::engine::testing
