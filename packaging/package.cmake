# What an installation holds beyond the programs, and the Debian package
# (docs/operations.md): the systemd units, the runner that starts them where
# systemd is not the init system, the kiln user, and the CPack settings that
# turn the install tree into kiln_VERSION_ARCH.deb (scripts/package runs it).
# Included at the end of the top-level CMakeLists.txt.

install(PROGRAMS packaging/kiln-service DESTINATION ${CMAKE_INSTALL_LIBEXECDIR}/kiln)
install(FILES packaging/sysusers.d/kiln.conf DESTINATION lib/sysusers.d)
# The units name the programs by absolute path, so they are written at
# install time for the prefix being installed to (`cmake --install --prefix
# P`, CPack's /usr): P/lib/systemd/system.
install(CODE "
  set(KILN_BINDIR \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}\")
  set(KILN_DOCDIR \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_DOCDIR}\")
  foreach(unit kiln-scheduler.service kiln-worker@.service)
    set(dest \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/lib/systemd/system/\${unit}\")
    message(STATUS \"Installing: \${dest}\")
    configure_file(\"${PROJECT_SOURCE_DIR}/packaging/systemd/\${unit}.in\" \"\${dest}\" @ONLY)
  endforeach()
")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME kiln)
set(CPACK_PACKAGE_CONTACT "kiln <kiln@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "distributed, cache-aware build farm (scheduler, worker, CLI)")
set(CPACK_PACKAGE_DESCRIPTION
    "kiln-scheduler keeps a durable job queue and sends each build to the worker most likely to hold its
steps in cache; kiln-worker builds OBuilder specs with a snapshot store and runc; kiln is the command
line. Includes the systemd units kiln-scheduler.service and kiln-worker@.service.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION devel)
# Libraries from dpkg-shlibdeps; what the programs run: runc (or crun) for
# builds, busybox-static for the base image, useradd for the kiln user.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "runc | crun, busybox-static, passwd")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "btrfs-progs, xfsprogs, rsync")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/packaging/debian/postinst ${PROJECT_SOURCE_DIR}/packaging/debian/prerm
    ${PROJECT_SOURCE_DIR}/packaging/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_COMPRESSION_TYPE zstd)
include(CPack)
