# The image planners and payload decompression (Debian's liblz4, liblzma, libzstd and zlib):
# pure functions of image bytes and a RAM layout. Included by src/CMakeLists.txt (the loaders
# layer) and by the fuzz-only build, which makes them the guestvm_loaders target.
find_package(PkgConfig REQUIRED)
pkg_check_modules(GUESTVM_COMPRESSION REQUIRED liblz4 liblzma libzstd zlib)
# By name (-llz4 ...), not by the .so path, so the static CLI gets the archives.
add_library(guestvm_compression INTERFACE)
target_include_directories(guestvm_compression INTERFACE ${GUESTVM_COMPRESSION_INCLUDE_DIRS})
target_link_libraries(guestvm_compression INTERFACE ${GUESTVM_COMPRESSION_LIBRARIES})

set(GUESTVM_PLANNER_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/plan.cpp
  ${CMAKE_CURRENT_LIST_DIR}/elf.cpp
  ${CMAKE_CURRENT_LIST_DIR}/flat.cpp
  ${CMAKE_CURRENT_LIST_DIR}/linux.cpp
  ${CMAKE_CURRENT_LIST_DIR}/decompress.cpp
  ${CMAKE_CURRENT_LIST_DIR}/acpi.cpp
  ${CMAKE_CURRENT_LIST_DIR}/aml.cpp)

if(GUESTVM_FUZZ)
  add_library(guestvm_loaders OBJECT ${GUESTVM_PLANNER_SOURCES})
  target_include_directories(guestvm_loaders
    PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
    PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(guestvm_loaders PUBLIC fmt::fmt-header-only guestvm_compression
    PRIVATE guestvm_warnings)
endif()
