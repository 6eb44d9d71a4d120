package auth

import "github.com/entra-companion/entra-companion/auth/clock"

// Clock is the broker's time source, injectable so tests of expiry and refresh never sleep
// (clocktest.Fake).
type Clock = clock.Clock

// Timer is a pending AfterFunc call.
type Timer = clock.Timer

// SystemClock is the real clock.
type SystemClock = clock.System
