#include "server/service/tls_files.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace dinov3::service {
namespace {

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using Bio = std::unique_ptr<BIO, BioFree>;
using Cert = std::unique_ptr<X509, X509Free>;

absl::StatusOr<Bio> Open(const char* setting, const std::string& path) {
  Bio bio(BIO_new_file(path.c_str(), "r"));
  if (bio == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(setting, " ", path, ": cannot read the file"));
  }
  return bio;
}

// Every PEM certificate in the file; an error when there is none.
absl::StatusOr<std::vector<Cert>> ReadCertificates(const char* setting, const std::string& path) {
  absl::StatusOr<Bio> bio = Open(setting, path);
  if (!bio.ok()) return bio.status();
  std::vector<Cert> certs;
  while (X509* cert = PEM_read_bio_X509(bio->get(), nullptr, nullptr, nullptr)) {
    certs.emplace_back(cert);
  }
  ERR_clear_error();  // the end of the file reads as an error
  if (certs.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(setting, " ", path, ": no PEM certificate (-----BEGIN CERTIFICATE-----)"));
  }
  return certs;
}

std::string Subject(X509* cert) {
  char name[256] = {};
  X509_NAME_oneline(X509_get_subject_name(cert), name, sizeof(name));
  return name;
}

std::string Time(const ASN1_TIME* time) {
  Bio bio(BIO_new(BIO_s_mem()));
  ASN1_TIME_print(bio.get(), time);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

}  // namespace

absl::StatusOr<std::string> CheckTlsFiles(const std::string& cert_file, const std::string& key_file,
                                          const std::string& client_ca_file) {
  absl::StatusOr<std::vector<Cert>> chain = ReadCertificates("tls.cert_file", cert_file);
  if (!chain.ok()) return chain.status();
  X509* leaf = chain->front().get();
  if (X509_cmp_current_time(X509_get0_notAfter(leaf)) <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("tls.cert_file ", cert_file,
                                                   ": the certificate expired on ",
                                                   Time(X509_get0_notAfter(leaf))));
  }
  absl::StatusOr<Bio> key_bio = Open("tls.key_file", key_file);
  if (!key_bio.ok()) return key_bio.status();
  std::unique_ptr<EVP_PKEY, KeyFree> key(
      PEM_read_bio_PrivateKey(key_bio->get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat("tls.key_file ", key_file,
                     ": no unencrypted PEM private key (-----BEGIN PRIVATE KEY-----)"));
  }
  if (X509_check_private_key(leaf, key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat("tls.key_file ", key_file,
                                                   " is not the key of the certificate in "
                                                   "tls.cert_file ",
                                                   cert_file));
  }
  std::string description =
      absl::StrCat("certificate ", Subject(leaf), ", valid until ", Time(X509_get0_notAfter(leaf)));
  if (!client_ca_file.empty()) {
    absl::StatusOr<std::vector<Cert>> cas = ReadCertificates("tls.client_ca_file", client_ca_file);
    if (!cas.ok()) return cas.status();
    absl::StrAppend(&description, "; client certificates required, signed by one of ", cas->size(),
                    " CA certificate(s) in ", client_ca_file);
  }
  return description;
}

}  // namespace dinov3::service
