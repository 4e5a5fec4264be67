// ZeroMQ's GSSAPI security mechanism, which kiln never uses, without
// Kerberos. Debian's static libzmq is built with GSSAPI, so linking it needs
// the GSS-API functions; taking them from libgssapi_krb5 would load five
// Kerberos libraries into every kiln command (about a millisecond of a
// client's start, docs/performance.md). kiln sets no ZMQ_GSSAPI_* option on
// any socket, so libzmq never calls these; should it, each fails as a GSS-API
// implementation with no mechanism does (GSS_S_UNAVAILABLE) and the handshake
// is refused. Only the kiln client and kiln-local link this file (their
// .dynsym exports none of these, so a libcurl that kiln-local opens later
// still finds the real libgssapi_krb5); the daemons and tests use
// the shared libzmq with its real Kerberos libraries.
#include <gssapi/gssapi.h>

namespace {

OM_uint32 unavailable(OM_uint32* minor_status) {
  if (minor_status != nullptr) *minor_status = 0;
  return GSS_S_UNAVAILABLE;
}

OM_uint32 nothing_to_release(OM_uint32* minor_status) {
  if (minor_status != nullptr) *minor_status = 0;
  return GSS_S_COMPLETE;
}

}  // namespace

extern "C" {

gss_OID GSS_C_NT_USER_NAME = nullptr;
gss_OID GSS_C_NT_HOSTBASED_SERVICE = nullptr;

OM_uint32 gss_acquire_cred(OM_uint32* minor, gss_name_t, OM_uint32, gss_OID_set, gss_cred_usage_t,
                           gss_cred_id_t*, gss_OID_set*, OM_uint32*) {
  return unavailable(minor);
}
OM_uint32 gss_init_sec_context(OM_uint32* minor, gss_cred_id_t, gss_ctx_id_t*, gss_name_t, gss_OID, OM_uint32,
                               OM_uint32, gss_channel_bindings_t, gss_buffer_t, gss_OID*, gss_buffer_t,
                               OM_uint32*, OM_uint32*) {
  return unavailable(minor);
}
OM_uint32 gss_accept_sec_context(OM_uint32* minor, gss_ctx_id_t*, gss_cred_id_t, gss_buffer_t,
                                 gss_channel_bindings_t, gss_name_t*, gss_OID*, gss_buffer_t, OM_uint32*,
                                 OM_uint32*, gss_cred_id_t*) {
  return unavailable(minor);
}
OM_uint32 gss_wrap(OM_uint32* minor, gss_ctx_id_t, int, gss_qop_t, gss_buffer_t, int*, gss_buffer_t) {
  return unavailable(minor);
}
OM_uint32 gss_unwrap(OM_uint32* minor, gss_ctx_id_t, gss_buffer_t, gss_buffer_t, int*, gss_qop_t*) {
  return unavailable(minor);
}
OM_uint32 gss_display_name(OM_uint32* minor, gss_name_t, gss_buffer_t, gss_OID*) {
  return unavailable(minor);
}
OM_uint32 gss_import_name(OM_uint32* minor, gss_buffer_t, gss_OID, gss_name_t*) {
  return unavailable(minor);
}
OM_uint32 gss_delete_sec_context(OM_uint32* minor, gss_ctx_id_t*, gss_buffer_t) {
  return nothing_to_release(minor);
}
OM_uint32 gss_release_cred(OM_uint32* minor, gss_cred_id_t*) {
  return nothing_to_release(minor);
}
OM_uint32 gss_release_name(OM_uint32* minor, gss_name_t*) {
  return nothing_to_release(minor);
}
OM_uint32 gss_release_buffer(OM_uint32* minor, gss_buffer_t) {
  return nothing_to_release(minor);
}

}  // extern "C"
