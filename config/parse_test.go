package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// parseErrors parses doc and returns its problems, one per line, failing the
// test if there are none or if a config comes back with the error.
func parseErrors(t *testing.T, doc string) string {
	t.Helper()
	c, err := Parse([]byte(doc), "config.toml")
	if err == nil {
		t.Fatalf("Parse() succeeded, want an error; config: %+v", c)
	}
	if c != nil {
		t.Errorf("Parse() returned a config with the error %v", err)
	}
	return err.Error()
}

// TestParseSyntaxTypesAndKeys checks the problems found before decoding: TOML
// syntax, unknown keys and values of the wrong type.
func TestParseSyntaxTypesAndKeys(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"syntax: unterminated string",
			"cloud = \"global\"\nclient_id = \"abc\nx = 1\n",
			"config.toml:2: syntax error at column 17: basic strings cannot have new lines"},
		{"syntax: missing value",
			"[proxy]\n\nlisten =\n",
			"config.toml:3: syntax error at column 9: unexpected character U+000A at start of value"},
		{"syntax: bad header",
			"[proxy\n",
			"config.toml:1: syntax error at column 7: expected ']' to close table name"},
		{"string expected",
			"# comment\n[proxy]\nrequire_key = false\n\n\n\nlisten = 8631\n",
			"config.toml:7: proxy.listen: expected a string, got integer"},
		{"boolean expected",
			"start_at_login = \"yes\"\n",
			"config.toml:1: start_at_login: expected a boolean (true or false), got string"},
		{"array expected",
			"scopes = \"Mail.Read\"\n",
			`config.toml:1: scopes: expected an array of strings, got string: put it in brackets, like ["Mail.Read"]`},
		{"array element",
			"scopes = [\n  \"Mail.Read\",\n  2,\n]\n",
			"config.toml:3: scopes[1]: expected a string, got integer"},
		{"date",
			"[proxy]\nrequire_key = 1979-05-27\n",
			"config.toml:2: proxy.require_key: expected a boolean (true or false), got date"},
		{"float",
			"client_id = 1.5\n",
			"config.toml:1: client_id: expected a string, got float"},
		{"table expected",
			"proxy = \"127.0.0.1:8631\"\n",
			"config.toml:1: proxy: expected a table, got string"},
		{"table given for a string",
			"[cloud]\nname = \"global\"\n",
			"config.toml:1: cloud: expected a string, got table"},
		{"single brackets for routes",
			"[proxy.routes]\nname = \"cms\"\nprefix = \"/cms/\"\n",
			"config.toml:1: proxy.routes: expected an array of tables, got table: write [[proxy.routes]], with double brackets, for each element"},
		{"array of tables for a table",
			"[[proxy]]\nlisten = \"127.0.0.1:1\"\n",
			"config.toml:1: proxy: expected a table, got array of tables"},
		{"array of tables for strings",
			"[[scopes]]\nx = 1\n",
			"config.toml:1: scopes: expected an array of strings, got array of tables"},
		{"route of the wrong type",
			"[proxy]\nroutes = [\"/cms/\"]\n",
			"config.toml:2: proxy.routes[0]: expected a table, got string"},
		{"unknown key with a suggestion",
			strings.Join([]string{
				"[[proxy.routes]]",                          // 1
				`name = "graph"`,                            // 2
				`prefix = "/graph/"`,                        // 3
				`upstream = "https://graph.microsoft.com/"`, // 4
				"",                                    // 5
				"[[proxy.routes]]",                    // 6
				`name = "cms"`,                        // 7
				`prefix = "/cms/"`,                    // 8
				`auth = "strapi"`,                     // 9
				"",                                    // 10
				"# Strapi's default port",             // 11
				`upstreem = "http://localhost:1337/"`, // 12
			}, "\n"),
			`config.toml:12: unknown key "proxy.routes[1].upstreem" (did you mean "upstream"?)`},
		{"unknown key, case and dashes",
			"Client-ID = \"x\"\n",
			`config.toml:1: unknown key "Client-ID" (did you mean "client_id"?)`},
		{"unknown key without a suggestion",
			"\ntheme = \"dark\"\n",
			`config.toml:2: unknown key "theme": remove it, or fix its spelling (the keys allowed at the top level are client_id, authority, cloud, graph_url, scopes, keychain_service, start_at_login, proxy)`},
		{"unknown table",
			"[logging]\nlevel = \"debug\"\nfile = \"x\"\n",
			`config.toml:1: unknown key "logging": remove it, or fix its spelling (the keys allowed at the top level are client_id, authority, cloud, graph_url, scopes, keychain_service, start_at_login, proxy)`},
		{"unknown key in a route",
			"[[proxy.routes]]\nname = \"x\"\nheaders = []\n",
			`config.toml:3: unknown key "proxy.routes[0].headers": remove it, or fix its spelling (the keys allowed in a [[proxy.routes]] table are name, prefix, upstream, scopes, auth, account)`},
		{"top-level key after a table header",
			"[proxy]\nlisten = \"127.0.0.1:8631\"\nclient_id = \"14d82eec-204b-4c2f-b7e8-296a70dab67e\"\n",
			`config.toml:3: unknown key "proxy.client_id": client_id belongs at the top level, before the first [table] header`},
		{"proxy key at the top level",
			"listen = \"127.0.0.1:8631\"\n",
			`config.toml:1: unknown key "listen": listen belongs in the [proxy] table`},
		{"route key in the proxy table",
			"[proxy]\nupstream = \"http://localhost:1337/\"\n",
			`config.toml:2: unknown key "proxy.upstream": upstream belongs in a [[proxy.routes]] table`},
		{"quoted unknown key",
			"\"client id\" = \"x\"\n",
			`config.toml:1: unknown key "\"client id\"" (did you mean "client_id"?)`},
		{"key set twice",
			"cloud = \"global\"\nclient_id = \"14d82eec-204b-4c2f-b7e8-296a70dab67e\"\ncloud = \"usgov\"\n",
			"config.toml:3: cloud is set twice (first on line 1): keep one"},
		{"key set twice in an inline table",
			"proxy = { listen = \"127.0.0.1:1\", listen = \"127.0.0.1:2\" }\n",
			"config.toml:1: proxy.listen is set twice (first on line 1): keep one"},
		{"table defined twice",
			"[proxy]\nlisten = \"127.0.0.1:1\"\n[proxy]\nrequire_key = true\n",
			"config.toml:3: invalid TOML: table proxy already exists"},
		{"all problems, in line order",
			"[proxy]\nlisten = 1\nrequire_key = \"no\"\nbogus = true\n[[proxy.routes]]\nnmae = \"x\"\n",
			strings.Join([]string{
				"config.toml:2: proxy.listen: expected a string, got integer",
				"config.toml:3: proxy.require_key: expected a boolean (true or false), got string",
				`config.toml:4: unknown key "proxy.bogus": remove it, or fix its spelling (the keys allowed in the [proxy] table are listen, allowed_origins, require_key, routes)`,
				`config.toml:6: unknown key "proxy.routes[0].nmae" (did you mean "name"?)`,
			}, "\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseErrors(t, tt.doc); got != tt.want {
				t.Errorf("error:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

// TestParseValidation checks each validation rule, with the line it names.
func TestParseValidation(t *testing.T) {
	route := func(name, prefix, upstream, extra string) string {
		return fmt.Sprintf("\n[[proxy.routes]]\nname = %q\nprefix = %q\nupstream = %q\n%s", name, prefix, upstream, extra)
	}
	tests := []struct {
		name, doc, want string
	}{
		// client_id
		{"client id not a guid", "\nclient_id = \"my-app\"\n",
			`config.toml:2: client_id "my-app" is not a GUID: use the application (client) id of your app registration, like "14d82eec-204b-4c2f-b7e8-296a70dab67e"`},
		{"client id empty", "client_id = \"\"\n",
			"config.toml:1: client_id is empty: set it to the application (client) id of your app registration, or remove the line to use the default"},
		// authority
		{"authority http", "authority = \"http://login.microsoftonline.com/organizations\"\n",
			`config.toml:1: authority "http://login.microsoftonline.com/organizations" must use https: use one like "https://login.microsoftonline.com/organizations"`},
		{"authority without tenant", "authority = \"https://login.microsoftonline.com/\"\n",
			`config.toml:1: authority "https://login.microsoftonline.com/" has no tenant: add one after the host, like "https://login.microsoftonline.com/organizations", or a tenant id or domain`},
		{"authority with query", "authority = \"https://login.microsoftonline.com/common?x=1\"\n",
			`config.toml:1: authority "https://login.microsoftonline.com/common?x=1" must not have a query or fragment: remove everything from "?" or "#" on`},
		{"authority with fragment", "authority = \"https://login.microsoftonline.com/common#x\"\n",
			`config.toml:1: authority "https://login.microsoftonline.com/common#x" must not have a query or fragment: remove everything from "?" or "#" on`},
		{"authority with user", "authority = \"https://u:p@login.microsoftonline.com/common\"\n",
			`config.toml:1: authority "https://u:p@login.microsoftonline.com/common" must not contain a user name or password: remove the part before "@"`},
		{"authority relative", "authority = \"organizations\"\n",
			`config.toml:1: authority "organizations" is not an absolute URL: use one like "https://login.microsoftonline.com/organizations"`},
		// cloud
		{"cloud unknown", "cloud = \"azure\"\n",
			`config.toml:1: cloud "azure" is not a cloud: use "global", "usgov" or "china"`},
		{"cloud empty", "cloud = \"\"\n",
			`config.toml:1: cloud is empty: use "global", "usgov" or "china", or remove the line to use "global"`},
		// graph_url
		{"graph url http", "graph_url = \"http://graph.microsoft.com/v1.0\"\n",
			`config.toml:1: graph_url "http://graph.microsoft.com/v1.0" must use https (http is only allowed for 127.0.0.1, [::1] and localhost): use one like "https://graph.microsoft.com/v1.0"`},
		{"graph url other scheme", "graph_url = \"ftp://graph.microsoft.com/v1.0\"\n",
			`config.toml:1: graph_url "ftp://graph.microsoft.com/v1.0" must use https: use one like "https://graph.microsoft.com/v1.0"`},
		{"graph url with query", "graph_url = \"https://graph.microsoft.com/v1.0?$select=id\"\n",
			`config.toml:1: graph_url "https://graph.microsoft.com/v1.0?$select=id" must not have a query or fragment: remove everything from "?" or "#" on`},
		// scopes
		{"scope with a space", "scopes = [\"Mail.Read\",\n  \"Files.Read User.Read\"]\n",
			`config.toml:2: scopes[1] "Files.Read User.Read" is not a scope: scopes have no spaces, quotes or backslashes; write each as its own string, like ["Mail.Read", "Files.Read"]`},
		{"scope empty", "scopes = [\"\"]\n",
			"config.toml:1: scopes[0] is empty: remove it"},
		// keychain_service
		{"keychain service empty", "keychain_service = \"\"\n",
			`config.toml:1: keychain_service is empty: set it, or remove the line to use "entra-companion"`},
		{"keychain service long", "keychain_service = \"" + strings.Repeat("k", 65) + "\"\n",
			"config.toml:1: keychain_service is 65 characters long, more than the limit of 64: shorten it"},
		{"keychain service unprintable", "keychain_service = \"entra\u200bcompanion\"\n",
			`config.toml:1: keychain_service "entra\u200bcompanion" contains the unprintable character U+200B: remove it`},
		// proxy.listen
		{"listen on all interfaces", "\n\n\n[proxy]\n\n\n\n\nlisten = \"0.0.0.0:8631\"\n",
			`config.toml:9: proxy.listen "0.0.0.0:8631" is not a loopback address: use 127.0.0.1 or [::1]`},
		{"listen without host", "[proxy]\nlisten = \":8631\"\n",
			`config.toml:2: proxy.listen ":8631" is not a loopback address: use 127.0.0.1 or [::1]`},
		{"listen on a lan address", "[proxy]\nlisten = \"192.168.1.10:8631\"\n",
			`config.toml:2: proxy.listen "192.168.1.10:8631" is not a loopback address: use 127.0.0.1 or [::1]`},
		{"listen on a name", "[proxy]\nlisten = \"myhost:8631\"\n",
			`config.toml:2: proxy.listen "myhost:8631" is not a loopback address: use 127.0.0.1 or [::1]`},
		{"listen without port", "[proxy]\nlisten = \"127.0.0.1\"\n",
			`config.toml:2: proxy.listen "127.0.0.1" is not host:port: use one like "127.0.0.1:8631" or "[::1]:8631"`},
		{"listen ipv6 without brackets", "[proxy]\nlisten = \"::1:8631\"\n",
			`config.toml:2: proxy.listen "::1:8631" is not host:port: use one like "127.0.0.1:8631" or "[::1]:8631"`},
		{"listen port too big", "[proxy]\nlisten = \"127.0.0.1:65536\"\n",
			`config.toml:2: proxy.listen "127.0.0.1:65536" has no valid port: use a number from 1 to 65535, or 0 to pick a free port`},
		{"listen named port", "[proxy]\nlisten = \"localhost:http\"\n",
			`config.toml:2: proxy.listen "localhost:http" has no valid port: use a number from 1 to 65535, or 0 to pick a free port`},
		// proxy.allowed_origins
		{"origin star", "[proxy]\nallowed_origins = [\n  \"http://localhost:*\",\n  \"*\",\n]\n",
			`config.toml:4: proxy.allowed_origins[1] "*" would let every web site you visit call the proxy with your tokens: list the origins of your own apps instead, like "http://localhost:3000" or "http://localhost:*"`},
		{"origin null", "[proxy]\nallowed_origins = [\"null\"]\n",
			`config.toml:2: proxy.allowed_origins[0] "null" is the origin of sandboxed pages and local files, which any site can create: list the origins of your own apps instead, like "http://localhost:3000" or "http://localhost:*"`},
		{"origin with path", "[proxy]\nallowed_origins = [\"http://localhost:3000/\"]\n",
			`config.toml:2: proxy.allowed_origins[0] "http://localhost:3000/" is not an origin: write only scheme://host[:port], without a path (not even a trailing "/"), like "http://localhost:3000" or "http://localhost:*"`},
		{"origin without scheme", "[proxy]\nallowed_origins = [\"localhost:3000\"]\n",
			`config.toml:2: proxy.allowed_origins[0] "localhost:3000" is not an origin: write scheme://host[:port], like "http://localhost:3000" or "http://localhost:*"`},
		{"origin in capitals", "[proxy]\nallowed_origins = [\"http://LocalHost:3000\"]\n",
			`config.toml:2: proxy.allowed_origins[0] "http://LocalHost:3000" has capital letters: write it in lowercase, as browsers send it`},
		{"origin bad port", "[proxy]\nallowed_origins = [\"http://localhost:0\"]\n",
			`config.toml:2: proxy.allowed_origins[0] "http://localhost:0" has no valid port: write a port from 1 to 65535, or "*" for any`},
		{"origin wildcard host", "[proxy]\nallowed_origins = [\"https://*.contoso.com\"]\n",
			`config.toml:2: proxy.allowed_origins[0] "https://*.contoso.com" has no valid host: write scheme://host[:port], like "http://localhost:3000" or "http://localhost:*"`},
		{"origin bad ipv6", "[proxy]\nallowed_origins = [\"http://[127.0.0.1]:1\"]\n",
			`config.toml:2: proxy.allowed_origins[0] "http://[127.0.0.1]:1" has no valid IPv6 address in brackets: write it like "http://[::1]:*"`},
		// routes
		{"route name", route("My CMS", "/cms/", "http://localhost:1337/", `auth = "none"`),
			`config.toml:3: proxy.routes[0].name "My CMS" may only have lowercase letters, digits and dashes: use a name like "cms"`},
		{"route name missing", "[[proxy.routes]]\nprefix = \"/cms/\"\nupstream = \"http://localhost:1337/\"\nauth = \"none\"\n",
			`config.toml:1: proxy.routes[0].name is missing: name the route with lowercase letters, digits and dashes, like "cms"`},
		{"route names twice", route("cms", "/cms/", "http://localhost:1337/", `auth = "strapi"`) + route("cms", "/cms2/", "http://localhost:1338/", `auth = "strapi"`),
			`config.toml:8: proxy.routes[1].name "cms" is already the name of proxy.routes[0] (line 2): give each route its own name`},
		{"prefix without slashes", route("cms", "cms", "http://localhost:1337/", `auth = "none"`),
			`config.toml:4: proxy.routes[0].prefix "cms" must start and end with "/", like "/cms/"`},
		{"prefix without trailing slash", route("cms", "/cms", "http://localhost:1337/", `auth = "none"`),
			`config.toml:4: proxy.routes[0].prefix "/cms" must start and end with "/", like "/cms/"`},
		{"prefix with double slash", route("cms", "/cms//api/", "http://localhost:1337/", `auth = "none"`),
			`config.toml:4: proxy.routes[0].prefix "/cms//api/" must not contain "//": write one "/" between path segments`},
		{"prefix with dot dot", route("cms", "/cms/../", "http://localhost:1337/", `auth = "none"`),
			`config.toml:4: proxy.routes[0].prefix "/cms/../" must not contain "." or ".." segments: write the path as it is after cleaning`},
		{"prefix with query", route("cms", "/cms?/", "http://localhost:1337/", `auth = "none"`),
			`config.toml:4: proxy.routes[0].prefix "/cms?/" contains "?": a prefix may have letters, digits, "/" and -._~!$&'()*+,;=:@ (no spaces, "%", "?" or "#")`},
		{"prefix reserved", route("status", "/_companion/", "http://localhost:1337/", `auth = "none"`),
			`config.toml:4: proxy.routes[0].prefix "/_companion/" is inside /_companion/, the proxy's own status pages: use another prefix`},
		{"prefix root", route("all", "/", "http://localhost:1337/", `auth = "none"`),
			`config.toml:4: proxy.routes[0].prefix "/" would also cover /_companion/, the proxy's own status pages: use a longer prefix, like "/api/"`},
		{"prefix twice", route("cms", "/cms/", "http://localhost:1337/", `auth = "strapi"`) + route("cms2", "/cms/", "http://localhost:1338/", `auth = "strapi"`),
			`config.toml:9: proxy.routes[1].prefix "/cms/" is already the prefix of route "cms" (line 2): give each route its own prefix`},
		{"prefixes nest", route("api", "/api/v1/", "http://localhost:1/", `auth = "none"`) + route("cms", "/cms/", "http://localhost:1337/", `auth = "strapi"`) + route("all-api", "/api/", "http://localhost:2/", `auth = "none"`),
			`config.toml:14: proxy.routes[2].prefix "/api/" overlaps the prefix "/api/v1/" of route "api" (line 2): a request could match both; use prefixes that do not nest`},
		{"upstream missing", "[[proxy.routes]]\nname = \"cms\"\nprefix = \"/cms/\"\nauth = \"strapi\"\n",
			`config.toml:1: proxy.routes[0].upstream is missing: set it to the URL requests are forwarded to, like "http://localhost:1337/"`},
		{"upstream relative", route("cms", "/cms/", "localhost:1337", `auth = "strapi"`),
			`config.toml:5: proxy.routes[0].upstream "localhost:1337" is not an absolute URL: use one like "http://localhost:1337/"`},
		{"upstream ws", route("cms", "/cms/", "ws://localhost:1337/", `auth = "strapi"`),
			`config.toml:5: proxy.routes[0].upstream "ws://localhost:1337/" must use http or https: use one like "http://localhost:1337/"`},
		{"upstream with password", route("cms", "/cms/", "http://admin:secret@localhost:1337/", `auth = "strapi"`),
			`config.toml:5: proxy.routes[0].upstream "http://admin:secret@localhost:1337/" must not contain a user name or password: remove the part before "@" (the proxy attaches the credentials)`},
		{"upstream with query", route("cms", "/cms/", "http://localhost:1337/?token=x", `auth = "strapi"`),
			`config.toml:5: proxy.routes[0].upstream "http://localhost:1337/?token=x" must not have a query: remove everything from "?" on`},
		{"auth unknown", route("cms", "/cms/", "http://localhost:1337/", "auth = \"jwt\"\n"),
			`config.toml:6: proxy.routes[0].auth "jwt" is not an auth mode: use "bearer", "strapi" or "none"`},
		{"bearer without scopes", route("api", "/api/", "https://api.contoso.com/", ""),
			`config.toml:2: proxy.routes[0].scopes is empty: auth "bearer" needs the scopes of the token to send, like ["api://<app-id>/.default"] (only a route to Graph gets "https://graph.microsoft.com/.default" by default)`},
		{"bearer with empty scopes", route("api", "/api/", "https://api.contoso.com/", "scopes = []\n"),
			`config.toml:6: proxy.routes[0].scopes is empty: auth "bearer" needs the scopes of the token to send, like ["api://<app-id>/.default"] (only a route to Graph gets "https://graph.microsoft.com/.default" by default)`},
		{"strapi with scopes", route("cms", "/cms/", "http://localhost:1337/", "auth = \"strapi\"\nscopes = [\"User.Read\"]\n"),
			`config.toml:7: proxy.routes[0].scopes is set, but auth "strapi" takes no scopes (it exchanges a Graph token for a Strapi JWT): remove scopes`},
		{"none with scopes", route("cms", "/cms/", "http://localhost:1337/", "auth = \"none\"\nscopes = [\"User.Read\"]\n"),
			`config.toml:7: proxy.routes[0].scopes is set, but auth "none" sends no token: remove scopes, or use auth "bearer"`},
		{"route scope with a space", route("api", "/api/", "https://api.contoso.com/", "scopes = [\n  \"api://x/.default\",\n  \"a b\",\n]\n"),
			`config.toml:8: proxy.routes[0].scopes[1] "a b" is not a scope: scopes have no spaces, quotes or backslashes; write each as its own string, like ["Mail.Read", "Files.Read"]`},
		{"account with a space", route("cms", "/cms/", "http://localhost:1337/", "auth = \"strapi\"\naccount = \"Ada Lovelace\"\n"),
			`config.toml:7: proxy.routes[0].account "Ada Lovelace" is not an account: use its user name (like "ada@contoso.com") or its id, or remove the line to use the active account`},
		// control characters and huge values
		{"control character", "client_id = \"14d82eec-204b-4c2f-b7e8-296a70dab67e\\u0007\"\n",
			`config.toml:1: client_id "14d82eec-204b-4c2f-b7e8-296a70dab67e\a" contains the control character U+0007: remove it`},
		{"huge string", "\ngraph_url = \"https://graph.microsoft.com/" + strings.Repeat("v", 5000) + "\"\n",
			"config.toml:2: graph_url is 5028 bytes long, more than the limit of 4096: shorten it"},
		{"huge route name", route(strings.Repeat("n", 4097), "/x/", "http://localhost:1/", `auth = "none"`),
			"config.toml:3: proxy.routes[0].name is 4097 bytes long, more than the limit of 4096: shorten it"},
		{"too many scopes", "scopes = [" + strings.Repeat("\"s\",", 101) + "]\n",
			"config.toml:1: scopes has 101 scopes, more than the limit of 100: remove some"},
		{"too many origins", "[proxy]\nallowed_origins = [" + strings.Repeat("\"http://localhost:*\",", 101) + "]\n",
			"config.toml:2: proxy.allowed_origins has 101 origins, more than the limit of 100: remove some"},
		{"too many routes", "[proxy]\n" + strings.Repeat("[[proxy.routes]]\n", 101),
			"config.toml:2: proxy.routes has 101 routes, more than the limit of 100: remove some"},
		{"file too large", "# " + strings.Repeat("x", 1<<20) + "\n",
			"config.toml: the file is larger than 1 MiB, far more than any settings file needs: check that this is the right file"},
		// several problems, reported in line order, whatever the order of the checks
		{"sorted by line",
			"proxy.listen = \"0.0.0.0:1\"\nkeychain_service = \"\"\nclient_id = \"x\"\n",
			strings.Join([]string{
				`config.toml:1: proxy.listen "0.0.0.0:1" is not a loopback address: use 127.0.0.1 or [::1]`,
				`config.toml:2: keychain_service is empty: set it, or remove the line to use "entra-companion"`,
				`config.toml:3: client_id "x" is not a GUID: use the application (client) id of your app registration, like "14d82eec-204b-4c2f-b7e8-296a70dab67e"`,
			}, "\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseErrors(t, tt.doc); got != tt.want {
				t.Errorf("error:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

// TestParseAccepts checks values at the edges of the rules.
func TestParseAccepts(t *testing.T) {
	docs := []string{
		"authority = \"https://login.microsoftonline.com/contoso.onmicrosoft.com/\"\n",
		"authority = \"https://contoso.b2clogin.com/contoso.onmicrosoft.com/B2C_1_signin\"\n",
		"graph_url = \"http://127.0.0.1:8080/v1.0\"\n",
		"graph_url = \"http://[::1]:8080\"\n",
		"graph_url = \"http://localhost/v1.0/\"\n",
		"client_id = \"14D82EEC-204B-4C2F-B7E8-296A70DAB67E\"\n",
		"scopes = [\"api://6e2c3a4f/.default\", \"offline_access\", \"https://graph.microsoft.com/Mail.Read\"]\n",
		"keychain_service = \"entra companion (test)\"\n",
		"[proxy]\nlisten = \"[::1]:0\"\n",
		"[proxy]\nlisten = \"localhost:65535\"\n",
		"[proxy]\nlisten = \"127.0.0.1:0\"\n",
		"[proxy]\nallowed_origins = [\"https://app.contoso.com\", \"http://[::1]:3000\", \"http://localhost\", \"chrome-extension://abcdef\", \"http://127.0.0.1:*\", \"http://my_host.local:8080\"]\n",
		"[[proxy.routes]]\nname = \"a-1\"\nprefix = \"/a/b:c@d/~x/\"\nupstream = \"https://a.example/base\"\nscopes = [\"x\"]\naccount = \"00000000-0000-0000-0000-000000000000.11111111-1111-1111-1111-111111111111\"\n",
		"[[proxy.routes]]\nname = \"a\"\nprefix = \"/a/\"\nupstream = \"http://localhost:1/\"\nauth = \"none\"\n[[proxy.routes]]\nname = \"b\"\nprefix = \"/ab/\"\nupstream = \"http://localhost:2/\"\nauth = \"none\"\n",
		"[[proxy.routes]]\nname = \"x\"\nprefix = \"/" + strings.Repeat("p", 4094) + "/\"\nupstream = \"http://localhost:1/\"\nauth = \"none\"\n",
	}
	for _, doc := range docs {
		if _, err := Parse([]byte(doc), "config.toml"); err != nil {
			t.Errorf("Parse(%.80q) = %v", doc, err)
		}
	}
}

// TestErrorsAs checks that callers get the problems as *Error values.
func TestErrorsAs(t *testing.T) {
	doc := "[proxy]\nlisten = \"0.0.0.0:8631\"\nallowed_origins = [\"*\"]\n"
	_, err := Parse([]byte(doc), "/home/ada/.config/entra-companion/config.toml")
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("errors.As(%v, *Error) = false", err)
	}
	want := Error{File: "/home/ada/.config/entra-companion/config.toml", Line: 2, Column: 1, Key: "proxy.listen",
		Msg: `proxy.listen "0.0.0.0:8631" is not a loopback address: use 127.0.0.1 or [::1]`}
	if *e != want {
		t.Errorf("first error = %+v, want %+v", *e, want)
	}
	all := err.(interface{ Unwrap() []error }).Unwrap()
	if len(all) != 2 {
		t.Fatalf("got %d errors, want 2: %v", len(all), err)
	}
	var second *Error
	if !errors.As(all[1], &second) || second.Key != "proxy.allowed_origins[0]" || second.Line != 3 || second.Column != 20 {
		t.Errorf("second error = %+v", second)
	}
	for _, err := range all {
		if msg := err.Error(); strings.ToLower(msg[:1]) != msg[:1] {
			t.Errorf("error %q does not start in lowercase", msg)
		}
	}
}

// TestParseManyErrors checks that a file full of problems gets a bounded report.
func TestParseManyErrors(t *testing.T) {
	var b strings.Builder
	for i := range 200 {
		fmt.Fprintf(&b, "unknown%d = 1\n", i)
	}
	err := parseErrors(t, b.String())
	lines := strings.Split(err, "\n")
	if len(lines) != maxErrors+1 {
		t.Fatalf("got %d lines, want %d", len(lines), maxErrors+1)
	}
	if want := "config.toml: and 170 more problems: fix the ones above first"; lines[maxErrors] != want {
		t.Errorf("last line = %q, want %q", lines[maxErrors], want)
	}
}

// TestValidate checks Validate on configs built in code: the same rules, and
// messages without a file or line.
func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *Config)
		want   string
	}{
		{"default", func(c *Config) {}, ""},
		{"client id", func(c *Config) { c.ClientID = "" },
			"client_id is empty: set it to the application (client) id of your app registration, or remove the line to use the default"},
		{"listen", func(c *Config) { c.Proxy.Listen = "[::]:8631" },
			`proxy.listen "[::]:8631" is not a loopback address: use 127.0.0.1 or [::1]`},
		{"route auth unset", func(c *Config) { c.Proxy.Routes[1].Auth = "" },
			`proxy.routes[1].auth is empty: use "bearer", "strapi" or "none"`},
		{"overlap", func(c *Config) {
			c.Proxy.Routes = append(c.Proxy.Routes, Route{Name: "graph-beta", Prefix: "/graph/beta/", Upstream: "https://graph.microsoft.com/beta/", Auth: "none"})
		}, `proxy.routes[2].prefix "/graph/beta/" overlaps the prefix "/graph/" of route "graph": a request could match both; use prefixes that do not nest`},
		{"several, in order of the fields", func(c *Config) {
			c.Proxy.AllowedOrigins = []string{"*"}
			c.Cloud = "mars"
		}, `cloud "mars" is not a cloud: use "global", "usgov" or "china"` + "\n" +
			`proxy.allowed_origins[0] "*" would let every web site you visit call the proxy with your tokens: list the origins of your own apps instead, like "http://localhost:3000" or "http://localhost:*"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.change(c)
			err := c.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Validate() =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
	if err := (*Config)(nil).Validate(); err == nil {
		t.Error("nil.Validate() = nil")
	}
}
