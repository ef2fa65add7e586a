// The CLI console's escape keys (tools/guestvm/escape_keys.cpp).
#include "escape_keys.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace guestvm::cli {
namespace {

Keys feed(EscapeKeys &keys, std::string_view in) {
    return keys.feed({reinterpret_cast<const std::uint8_t *>(in.data()), in.size()});
}

struct Case {
    std::string input;
    std::string forward;
    bool quit;
    bool help;
};

TEST(EscapeKeys, SplitsKeysFromCommands) {
    const Case cases[] = {
        // Plain keys, control keys included, pass as they are.
        {std::string("ls -l\r\x03\x04\x1b[A") + '\0' + "\x7f",
         std::string("ls -l\r\x03\x04\x1b[A") + '\0' + "\x7f", false, false},
        // Ctrl-A x (or X) quits; what follows it is dropped.
        {"ab\001xcd", "ab", true, false},
        {"\001X", "", true, false},
        // Ctrl-A Ctrl-A is one Ctrl-A.
        {"a\001\001b\001\001\001\001", "a\001b\001\001", false, false},
        // Ctrl-A h / ? asks for help; Ctrl-A and another key drops both.
        {"1\001h2\001?3\001z4", "1234", false, true},
    };
    for (const Case &c : cases) {
        SCOPED_TRACE(testing::PrintToString(c.input));
        EscapeKeys keys;
        const Keys k = feed(keys, c.input);
        EXPECT_EQ(k.forward, c.forward);
        EXPECT_EQ(k.quit, c.quit);
        EXPECT_EQ(k.help, c.help);
    }
}

TEST(EscapeKeys, ACtrlAAtTheEndOfOnePieceAppliesToTheNext) {
    EscapeKeys keys;
    EXPECT_EQ(feed(keys, "abc\001").forward, "abc");
    EXPECT_EQ(feed(keys, "\001d").forward, "\001d");
    EXPECT_FALSE(feed(keys, "\001").quit);
    EXPECT_TRUE(feed(keys, "x").quit);
}

}  // namespace
}  // namespace guestvm::cli
