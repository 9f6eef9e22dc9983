# Writes OUTPUT, a C++ source that defines dinov3::openapi::OpenApiDocument() returning the bytes
# of INPUT exactly (any bytes: the file is read as hex, so no escaping or delimiter can break it).
# Run as: cmake -DINPUT=openapi.json -DOUTPUT=openapi_json.cc -P embed_file.cmake
get_filename_component(name "${INPUT}" NAME)
file(READ "${INPUT}" hex HEX)
string(LENGTH "${hex}" hex_length)
math(EXPR size "${hex_length} / 2")
# 0xNN, per byte, 16 bytes a line.
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],)(0x[0-9a-f][0-9a-f],)(0x[0-9a-f][0-9a-f],)(0x[0-9a-f][0-9a-f],)(0x[0-9a-f][0-9a-f],)(0x[0-9a-f][0-9a-f],)(0x[0-9a-f][0-9a-f],)(0x[0-9a-f][0-9a-f],))" "\\1\n" bytes "${bytes}")
file(WRITE "${OUTPUT}.tmp"
"// Generated from server/openapi/${name} by embed_file.cmake at build time: do not edit.
#include \"server/openapi/openapi_document.h\"

namespace dinov3::openapi {
namespace {

// ${size} bytes and a terminating zero (so that the array is never empty).
constexpr unsigned char kDocument[] = {
${bytes}0x00};

}  // namespace

absl::string_view OpenApiDocument() {
  return absl::string_view(reinterpret_cast<const char*>(kDocument), ${size});
}

}  // namespace dinov3::openapi
")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
