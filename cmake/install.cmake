# cmake --install: the library (static and shared), both header trees (guestvm/ and sel4vm/),
# the CLI, a CMake package (find_package(guestvm) → guestvm::guestvm, the static library, and
# guestvm::guestvm_shared) and two pkg-config files (guestvm.pc static, guestvm-shared.pc). CPack makes a .deb of it.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS guestvm_core guestvm_shared EXPORT guestvm-targets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/guestvm ${PROJECT_SOURCE_DIR}/include/sel4vm
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
if(TARGET guestvm)
  install(TARGETS guestvm RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()

set(GUESTVM_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/guestvm)
install(EXPORT guestvm-targets NAMESPACE guestvm:: DESTINATION ${GUESTVM_CMAKE_DIR}
        FILE guestvm-targets.cmake)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/guestvm-config.cmake.in
                              ${PROJECT_BINARY_DIR}/guestvm-config.cmake
                              INSTALL_DESTINATION ${GUESTVM_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/guestvm-config-version.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/guestvm-config.cmake
              ${PROJECT_BINARY_DIR}/guestvm-config-version.cmake
        DESTINATION ${GUESTVM_CMAKE_DIR})

# pkg-config: the prefix is substituted at install time, so `--prefix` is honoured.
list(TRANSFORM GUESTVM_COMPRESSION_LIBRARIES PREPEND "-l" OUTPUT_VARIABLE GUESTVM_PC_LIBS)
list(JOIN GUESTVM_PC_LIBS " " GUESTVM_PC_LIBS)
foreach(pc guestvm guestvm-shared)
  configure_file(${PROJECT_SOURCE_DIR}/cmake/${pc}.pc.in ${PROJECT_BINARY_DIR}/${pc}.pc.in2 @ONLY)
  install(CODE "
    file(READ \"${PROJECT_BINARY_DIR}/${pc}.pc.in2\" pc)
    string(REPLACE \"%PREFIX%\" \"\${CMAKE_INSTALL_PREFIX}\" pc \"\${pc}\")
    file(WRITE \"${PROJECT_BINARY_DIR}/${pc}.pc\" \"\${pc}\")")
  install(FILES ${PROJECT_BINARY_DIR}/${pc}.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endforeach()

# CPack: one .deb holding all of the above (a development package: static library + headers).
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME guestvm)
set(CPACK_PACKAGE_VENDOR "guestvm")
set(CPACK_PACKAGE_CONTACT "guestvm developers <guestvm@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "Guest VMs on Linux KVM with seL4 libsel4vm's VM model and C API")
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libfmt-dev, liblz4-dev, liblzma-dev, libzstd-dev, zlib1g-dev")
set(CPACK_DEBIAN_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_STRIP_FILES ON)
include(CPack)
