// libcurl, loaded when first used (docs/performance.md, "Start-up"): the
// libcurl API kiln calls, defined here with libcurl's own signatures, each
// forwarding to the function dlsym() finds in libcurl.so.4, which is opened
// on the first call. Linked instead of libcurl into kiln-local (the property
// KILN_LAZY_CURL, CMakeLists.txt): loading libcurl and the two dozen
// libraries it needs cost ~5 ms of every command's start, and only pulls,
// pushes and the docker backend talk HTTP. The code that uses libcurl is
// unchanged; a new curl function it calls must be added here too (the link
// fails otherwise).
//
// When the library cannot be loaded, the call fails as libcurl's own calls
// fail (NULL handle, CURLE_FAILED_INIT) and one line on stderr says why.
// curl_easy_setopt's and curl_easy_getinfo's variadic argument is passed on
// by the option's type, which libcurl encodes in the option's number.
// Thread safety: the library is opened once (std::call_once).
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>
#include <dlfcn.h>

#include <cstdarg>
#include <cstdio>
#include <mutex>

namespace {

struct Curl {
  void* handle = nullptr;
  CURLcode (*global_init)(long) = nullptr;
  CURL* (*easy_init)() = nullptr;
  void (*easy_cleanup)(CURL*) = nullptr;
  void (*easy_reset)(CURL*) = nullptr;
  CURLcode (*easy_perform)(CURL*) = nullptr;
  CURLcode (*easy_setopt)(CURL*, CURLoption, ...) = nullptr;
  CURLcode (*easy_getinfo)(CURL*, CURLINFO, ...) = nullptr;
  const char* (*easy_strerror)(CURLcode) = nullptr;
  char* (*easy_escape)(CURL*, const char*, int) = nullptr;
  void (*free)(void*) = nullptr;
  curl_slist* (*slist_append)(curl_slist*, const char*) = nullptr;
  void (*slist_free_all)(curl_slist*) = nullptr;
};

template <class F>
bool find(void* handle, const char* name, F& out) {
  out = reinterpret_cast<F>(::dlsym(handle, name));
  return out != nullptr;
}

const Curl* curl() {
  static Curl loaded;
  static const Curl* result = nullptr;
  static std::once_flag once;
  std::call_once(once, [] {
    void* handle = ::dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      std::fprintf(stderr, "kiln: cannot load libcurl.so.4 (%s); install libcurl4 (apt-get install libcurl4)\n",
                   ::dlerror());
      return;
    }
    Curl c;
    c.handle = handle;
    bool ok = find(handle, "curl_global_init", c.global_init) && find(handle, "curl_easy_init", c.easy_init) &&
              find(handle, "curl_easy_cleanup", c.easy_cleanup) && find(handle, "curl_easy_reset", c.easy_reset) &&
              find(handle, "curl_easy_perform", c.easy_perform) && find(handle, "curl_easy_setopt", c.easy_setopt) &&
              find(handle, "curl_easy_getinfo", c.easy_getinfo) &&
              find(handle, "curl_easy_strerror", c.easy_strerror) &&
              find(handle, "curl_easy_escape", c.easy_escape) && find(handle, "curl_free", c.free) &&
              find(handle, "curl_slist_append", c.slist_append) &&
              find(handle, "curl_slist_free_all", c.slist_free_all);
    if (!ok) {
      std::fprintf(stderr, "kiln: libcurl.so.4 lacks a function kiln needs (%s)\n", ::dlerror());
      return;
    }
    loaded = c;
    result = &loaded;
  });
  return result;
}

}  // namespace

extern "C" {

CURLcode curl_global_init(long flags) {
  const Curl* c = curl();
  return c ? c->global_init(flags) : CURLE_FAILED_INIT;
}

CURL* curl_easy_init() {
  const Curl* c = curl();
  return c ? c->easy_init() : nullptr;
}

void curl_easy_cleanup(CURL* handle) {
  if (const Curl* c = curl()) c->easy_cleanup(handle);
}

void curl_easy_reset(CURL* handle) {
  if (const Curl* c = curl()) c->easy_reset(handle);
}

CURLcode curl_easy_perform(CURL* handle) {
  const Curl* c = curl();
  return c ? c->easy_perform(handle) : CURLE_FAILED_INIT;
}

CURLcode curl_easy_setopt(CURL* handle, CURLoption option, ...) {
  const Curl* c = curl();
  if (c == nullptr) return CURLE_FAILED_INIT;
  va_list args;
  va_start(args, option);
  CURLcode code;
  // libcurl numbers each option by the type of its argument.
  const int kind = option / 10000 * 10000;
  if (kind == CURLOPTTYPE_LONG) {
    code = c->easy_setopt(handle, option, va_arg(args, long));
  } else if (kind == CURLOPTTYPE_OBJECTPOINT || kind == CURLOPTTYPE_BLOB) {
    code = c->easy_setopt(handle, option, va_arg(args, void*));
  } else if (kind == CURLOPTTYPE_FUNCTIONPOINT) {
    code = c->easy_setopt(handle, option, va_arg(args, void (*)()));
  } else if (kind == CURLOPTTYPE_OFF_T) {
    code = c->easy_setopt(handle, option, va_arg(args, curl_off_t));
  } else {
    code = CURLE_UNKNOWN_OPTION;
  }
  va_end(args);
  return code;
}

CURLcode curl_easy_getinfo(CURL* handle, CURLINFO info, ...) {
  const Curl* c = curl();
  if (c == nullptr) return CURLE_FAILED_INIT;
  va_list args;
  va_start(args, info);
  // Every CURLINFO's argument is a pointer to where the answer goes.
  CURLcode code = c->easy_getinfo(handle, info, va_arg(args, void*));
  va_end(args);
  return code;
}

const char* curl_easy_strerror(CURLcode code) {
  const Curl* c = curl();
  return c ? c->easy_strerror(code) : "libcurl could not be loaded";
}

char* curl_easy_escape(CURL* handle, const char* text, int length) {
  const Curl* c = curl();
  return c ? c->easy_escape(handle, text, length) : nullptr;
}

void curl_free(void* p) {
  if (const Curl* c = curl()) c->free(p);
}

curl_slist* curl_slist_append(curl_slist* list, const char* text) {
  const Curl* c = curl();
  return c ? c->slist_append(list, text) : nullptr;
}

void curl_slist_free_all(curl_slist* list) {
  if (const Curl* c = curl()) c->slist_free_all(list);
}

}  // extern "C"
