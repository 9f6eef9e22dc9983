# Writes OUTPUT, a C++ source that defines dinov3::webui::internal::SYMBOL() returning the bytes
# of INPUT exactly (read as hex, so no escaping or delimiter can break it).
# Run as: cmake -DINPUT=index.html -DOUTPUT=index_html.cc -DSYMBOL=IndexHtml -P embed_asset.cmake
get_filename_component(name "${INPUT}" NAME)
file(READ "${INPUT}" hex HEX)
string(LENGTH "${hex}" hex_length)
math(EXPR size "${hex_length} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
# 16 bytes a line (CMake's regular expressions have no {n}: the group is repeated).
string(REPEAT "0x[0-9a-f][0-9a-f]," 16 line)
string(REGEX REPLACE "(${line})" "\\1\n" bytes "${bytes}")
file(WRITE "${OUTPUT}.tmp"
"// Generated from server/webui/${name} by embed_asset.cmake at build time: do not edit.
#include \"server/webui/web_page.h\"

namespace dinov3::webui::internal {
namespace {

// ${size} bytes and a terminating zero (so that the array is never empty).
constexpr unsigned char kBytes[] = {
${bytes}0x00};

}  // namespace

absl::string_view ${SYMBOL}() {
  return absl::string_view(reinterpret_cast<const char*>(kBytes), ${size});
}

}  // namespace dinov3::webui::internal
")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
