// For the fuzz targets: the message struct that each wire type frame names
// (common/proto/messages.h), so that a target can decode, re-encode or check
// any body by its type at run time.
//
//   bool ok = kiln::fuzz::with_message_type(type, [&]<class T>() { return proto::decode<T>(body).has_value();
//   }); kiln::fuzz::check_body(type, body, "scheduler reply");   // aborts if it does not decode
//
// Thread safety: functions.
#pragma once

#include <string>
#include <string_view>

#include "common/proto/messages.h"
#include "tests/fuzz/fuzz_support.h"

namespace kiln::fuzz {

inline constexpr int kMessageTypeCount = static_cast<int>(proto::Type::kGetOutput) + 1;

// f.template operator()<T>() for T the struct proto::decode reads for
// `type`; job-started, job-log, job-step and job-done share JobEvent.
template <class F>
decltype(auto) with_message_type(proto::Type type, F&& f) {
  using proto::Type;
  switch (type) {
    case Type::kError: return f.template operator()<proto::ErrorReply>();
    case Type::kHello: return f.template operator()<proto::Hello>();
    case Type::kWelcome: return f.template operator()<proto::Welcome>();
    case Type::kOk: return f.template operator()<proto::Ok>();
    case Type::kSubmit: return f.template operator()<proto::Submit>();
    case Type::kSubmitted: return f.template operator()<proto::Submitted>();
    case Type::kPutContext: return f.template operator()<proto::PutContext>();
    case Type::kContextAck: return f.template operator()<proto::ContextAck>();
    case Type::kGetStatus: return f.template operator()<proto::GetStatus>();
    case Type::kJob: return f.template operator()<proto::Job>();
    case Type::kListJobs: return f.template operator()<proto::ListJobs>();
    case Type::kJobs: return f.template operator()<proto::Jobs>();
    case Type::kReadLog: return f.template operator()<proto::ReadLog>();
    case Type::kLog: return f.template operator()<proto::Log>();
    case Type::kCancelJob: return f.template operator()<proto::CancelJob>();
    case Type::kListWorkers: return f.template operator()<proto::ListWorkers>();
    case Type::kWorkers: return f.template operator()<proto::Workers>();
    case Type::kWorkerAction: return f.template operator()<proto::WorkerAction>();
    case Type::kRegister: return f.template operator()<proto::Register>();
    case Type::kRegistered: return f.template operator()<proto::Registered>();
    case Type::kHeartbeat: return f.template operator()<proto::Heartbeat>();
    case Type::kReregister: return f.template operator()<proto::Reregister>();
    case Type::kAssign: return f.template operator()<proto::Assign>();
    case Type::kJobStarted:
    case Type::kJobLog:
    case Type::kJobStep:
    case Type::kJobDone: return f.template operator()<proto::JobEvent>();
    case Type::kCancelAssigned: return f.template operator()<proto::CancelAssigned>();
    case Type::kWorkerState: return f.template operator()<proto::WorkerState>();
    case Type::kGetContext: return f.template operator()<proto::GetContext>();
    case Type::kContextChunk: return f.template operator()<proto::ContextChunk>();
    case Type::kInventory: return f.template operator()<proto::Inventory>();
    case Type::kJobAcks: return f.template operator()<proto::JobAcks>();
    case Type::kPutOutput: return f.template operator()<proto::PutOutput>();
    case Type::kGetOutput: return f.template operator()<proto::GetOutput>();
  }
  fail("message type out of range", std::to_string(static_cast<int>(type)));
}

// Aborts unless `body` decodes as a message of `type`: what kiln sends must
// always be readable by its peer.
inline void check_body(proto::Type type, std::string_view body, std::string_view sender) {
  with_message_type(type, [&]<class T>() {
    auto decoded = proto::decode<T>(body);
    if (!decoded)
      fail(std::string(sender) + " sent a " + std::string(proto::type_name(type)) + " that does not decode",
           decoded.error().to_string());
  });
}

}  // namespace kiln::fuzz
