// ReadSecretLines (comments, blanks, whitespace, errors that name the file and never a secret)
// and the constant-time comparisons.
#include "server/common/secret_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>

namespace dinov3 {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

std::string WriteFile(const std::string& name, const std::string& contents) {
  const std::string path = ::testing::TempDir() + name;
  std::ofstream(path) << contents;
  return path;
}

TEST(SecretFileTest, ReadsTrimmedLinesWithoutCommentsOrBlanks) {
  const std::string path =
      WriteFile("keys.txt", "# team A\n  key-one-0123456789  \n\n\tkey two with spaces\r\n#x\n");
  auto secrets = ReadSecretLines(path, "auth.api_keys_file");
  ASSERT_TRUE(secrets.ok()) << secrets.status();
  EXPECT_THAT(*secrets, ElementsAre("key-one-0123456789", "key two with spaces"));
}

TEST(SecretFileTest, MissingOrEmptyFilesAreErrorsNamingTheSetting) {
  auto missing = ReadSecretLines("/nonexistent/keys", "auth.api_keys_file");
  EXPECT_TRUE(absl::IsNotFound(missing.status())) << missing.status();
  EXPECT_THAT(missing.status().message(), HasSubstr("auth.api_keys_file /nonexistent/keys"));

  auto empty = ReadSecretLines(WriteFile("empty.txt", "# only a comment\n\n"), "x.file");
  EXPECT_TRUE(absl::IsInvalidArgument(empty.status())) << empty.status();
  EXPECT_THAT(empty.status().message(), HasSubstr("no entries"));
}

TEST(SecretFileTest, ConstantTimeEqualsIsExactEquality) {
  EXPECT_TRUE(ConstantTimeEquals("abcdef", "abcdef"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_FALSE(ConstantTimeEquals("abcdef", "abcdeg"));
  EXPECT_FALSE(ConstantTimeEquals("abcdef", "Abcdef"));
  EXPECT_FALSE(ConstantTimeEquals("abcdef", "abcde"));               // a prefix
  EXPECT_FALSE(ConstantTimeEquals("abc", std::string("abc\0", 4)));  // no C-string cut
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", ""));
  EXPECT_FALSE(ConstantTimeEquals("", "a"));
}

TEST(SecretFileTest, MatchesAnySecretChecksEveryEntry) {
  const std::vector<std::string> secrets = {"first-secret", "second-secret", "third"};
  EXPECT_TRUE(MatchesAnySecret(secrets, "first-secret"));
  EXPECT_TRUE(MatchesAnySecret(secrets, "third"));
  EXPECT_FALSE(MatchesAnySecret(secrets, "second"));
  EXPECT_FALSE(MatchesAnySecret(secrets, ""));
  EXPECT_FALSE(MatchesAnySecret({}, "anything"));
}

}  // namespace
}  // namespace dinov3
