// The web dashboard served at / by HttpServer: one self-contained HTML page
// (CSS and JavaScript inline; nothing is loaded from another host) that
// polls the /v1 JSON API every 2 s and shows pools (with the workers-wanted
// recommendation and low-disk warnings), workers (disk and cache-hit bars),
// the queue, running jobs with a live log (read by offset from
// /v1/jobs/ID/log), recent ended jobs and clients.
//
//   res.set_content(std::string(dashboard_html()), "text/html; charset=utf-8");
//
// Elements tests look for: #pools, #workers, #queue, #running, #recent,
// #clients, #log; each pool's workers-wanted figure is in
// <span id="wanted-POOL">N</span>. Thread safety: returns a static string.
#pragma once

#include <string_view>

namespace kiln::http {

std::string_view dashboard_html();

}  // namespace kiln::http
