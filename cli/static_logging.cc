// spdlog and fmt compiled into kiln (Debian ships them only as shared
// libraries). Loading libspdlog and libfmt would also load libstdc++ as a
// shared library, and resolving symbols against it is most of what is left
// of the client's start (docs/performance.md); with their code here kiln links
// libstdc++ statically. The definitions come from the libraries' own -inl.h
// headers, compiled once in this file as the libraries' builds do.
#include <fmt/format.h>
#include <fmt/format-inl.h>

#include <spdlog/async.h>
#include <spdlog/common-inl.h>
#include <spdlog/details/backtracer-inl.h>
#include <spdlog/details/file_helper-inl.h>
#include <spdlog/details/log_msg-inl.h>
#include <spdlog/details/log_msg_buffer-inl.h>
#include <spdlog/details/os-inl.h>
#include <spdlog/details/periodic_worker-inl.h>
#include <spdlog/details/registry-inl.h>
#include <spdlog/details/thread_pool-inl.h>
#include <spdlog/logger-inl.h>
#include <spdlog/pattern_formatter-inl.h>
#include <spdlog/sinks/ansicolor_sink-inl.h>
#include <spdlog/sinks/base_sink-inl.h>
#include <spdlog/sinks/basic_file_sink-inl.h>
#include <spdlog/sinks/sink-inl.h>
#include <spdlog/sinks/stdout_color_sinks-inl.h>
#include <spdlog/sinks/stdout_sinks-inl.h>
#include <spdlog/spdlog-inl.h>
#include <spdlog/async_logger-inl.h>

#include <mutex>

// The class templates kiln's sinks use, instantiated here once.
template class spdlog::sinks::base_sink<std::mutex>;
template class spdlog::sinks::base_sink<spdlog::details::null_mutex>;
template class spdlog::sinks::ansicolor_sink<spdlog::details::console_mutex>;
template class spdlog::sinks::ansicolor_stderr_sink<spdlog::details::console_mutex>;
template class spdlog::sinks::ansicolor_stdout_sink<spdlog::details::console_mutex>;
template class spdlog::sinks::stdout_sink_base<spdlog::details::console_mutex>;
template class spdlog::sinks::stderr_sink<spdlog::details::console_mutex>;
template class spdlog::sinks::stdout_sink<spdlog::details::console_mutex>;
template class spdlog::sinks::basic_file_sink<std::mutex>;

// fmt's out-of-line templates kiln calls.
FMT_BEGIN_NAMESPACE
template FMT_API auto detail::thousands_sep_impl<char>(locale_ref) -> thousands_sep_result<char>;
template FMT_API auto detail::decimal_point_impl<char>(locale_ref) -> char;
FMT_END_NAMESPACE
