// Helpers for the config tests: temporary YAML files and configs that differ from the defaults
// in every key.
#ifndef DINOV3_TESTS_UNIT_CONFIG_CONFIG_TEST_UTIL_H_
#define DINOV3_TESTS_UNIT_CONFIG_CONFIG_TEST_UTIL_H_

#include <map>
#include <string>

#include "config/server_config.h"

namespace dinov3::config::testing {

// Writes `contents` to a new file under the test temp directory and returns its path.
std::string WriteTempFile(const std::string& contents);

// Valid configs in which every key differs from the defaults and from each other's.
ServerConfig ConfigA();
ServerConfig ConfigB();
ServerConfig ConfigC();

// key -> value text, from Summary() (lists comma-separated, as in environment variables); the
// trailing " models=..." part of Summary() is not a key and is left out.
std::map<std::string, std::string> FieldTexts(const ServerConfig& config);

}  // namespace dinov3::config::testing

#endif  // DINOV3_TESTS_UNIT_CONFIG_CONFIG_TEST_UTIL_H_
