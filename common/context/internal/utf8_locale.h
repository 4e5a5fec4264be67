// Internal to common/context: names in a context tar are UTF-8 (pax), and
// libarchive converts them from and to the calling thread's locale, which in
// kiln's programs is "C". While a Scope lives, its thread uses C.UTF-8, so a
// name's bytes go into and come out of the tar unchanged.
//
//   Utf8Locale utf8;                      // loaded once (e.g. per reader)
//   { auto in_utf8 = utf8.use(); archive_read_next_header(...); }
//
// Contract: a Scope affects only the calling thread and restores its previous
// locale when destroyed; when C.UTF-8 is missing, nothing changes. The
// Utf8Locale must outlive its Scopes. Thread safety: a Utf8Locale may be
// used from one thread at a time; a Scope belongs to the thread that made it.
#pragma once

#include <locale.h>

#include <utility>

namespace kiln::context::internal {

class Utf8Locale {
 public:
  Utf8Locale() : locale_(::newlocale(LC_CTYPE_MASK, "C.UTF-8", nullptr)) {}
  ~Utf8Locale() {
    if (locale_ != nullptr) ::freelocale(locale_);
  }
  Utf8Locale(Utf8Locale&& other) noexcept : locale_(std::exchange(other.locale_, nullptr)) {}
  Utf8Locale& operator=(Utf8Locale&&) = delete;
  Utf8Locale(const Utf8Locale&) = delete;
  Utf8Locale& operator=(const Utf8Locale&) = delete;

  class Scope {
   public:
    explicit Scope(locale_t locale) : used_(locale != nullptr) {
      if (used_) previous_ = ::uselocale(locale);
    }
    ~Scope() {
      if (used_) ::uselocale(previous_);
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    bool used_;
    locale_t previous_ = nullptr;
  };

  [[nodiscard]] Scope use() const { return Scope(locale_); }

 private:
  locale_t locale_;
};

}  // namespace kiln::context::internal
