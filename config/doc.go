// Package config reads, checks and writes Entra Companion's settings file.
//
// The settings file is TOML. Its default path is config.toml in the
// "entra-companion" folder of [os.UserConfigDir]; the ENTRA_COMPANION_CONFIG
// environment variable (see [Path]) and the --config flag of the command line
// point elsewhere. A missing file is normal and means the defaults of
// [Default]; every key is optional and a missing key takes its default.
// example.toml, next to this package's source, describes every key.
//
// The file holds no secrets: refresh tokens, client secrets and the proxy's
// client key live in the OS keychain, and no field here can hold them.
//
// Reading is strict, so that a typo never passes silently: syntax errors,
// values of the wrong type, unknown keys and values that fail [Config.Validate]
// are all reported at once, each as an [*Error] naming the file, the line and
// the key, and telling the user what to do. A file that fails to load yields no
// [Config] at all, so callers keep the settings they had.
//
// [Save] writes only what differs from the defaults, atomically (a temporary
// file in the same folder, synced, then renamed), with mode 0600.
package config
