package sim

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"regexp"
)

// entraErr is an error of the authority in Entra's terms.
type entraErr struct {
	status   int    // 0 = 400
	code     string // OAuth error
	aadsts   int
	msg      string
	suberror string
	claims   string
}

// Error describes the error as Entra's error and description would.
func (e *entraErr) Error() string { return fmt.Sprintf("%s: AADSTS%d: %s", e.code, e.aadsts, e.msg) }

func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// correlationID is the caller's client-request-id when it is a GUID, else a new one.
func correlationID(r *http.Request) string {
	if id := r.Header.Get("client-request-id"); guidRE.MatchString(id) {
		return id
	}
	return newGUID()
}

// entraBody renders e as Entra does and returns the body with the trace id.
func (s *Server) entraBody(r *http.Request, e entraErr) map[string]any {
	trace, corr := newGUID(), correlationID(r)
	ts := s.now().UTC()
	desc := fmt.Sprintf("AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s",
		e.aadsts, e.msg, trace, corr, ts.Format("2006-01-02 15:04:05Z"))
	body := map[string]any{
		"error":             e.code,
		"error_description": desc,
		"error_codes":       []int{e.aadsts},
		"timestamp":         ts.Format("2006-01-02 15:04:05Z"),
		"trace_id":          trace,
		"correlation_id":    corr,
		"error_uri":         fmt.Sprintf("%s/error?code=%d", s.AuthorityHost(), e.aadsts),
	}
	if e.suberror != "" {
		body["suberror"] = e.suberror
	}
	if e.claims != "" {
		body["claims"] = e.claims
	}
	return body
}

func (s *Server) writeEntraError(w http.ResponseWriter, r *http.Request, e entraErr) {
	status := e.status
	if status == 0 {
		status = http.StatusBadRequest
	}
	body := s.entraBody(r, e)
	h := w.Header()
	h.Set("Cache-Control", "no-store, no-cache")
	h.Set("Pragma", "no-cache")
	h.Set("x-ms-request-id", body["trace_id"].(string))
	if id := r.Header.Get("client-request-id"); id != "" {
		h.Set("client-request-id", body["correlation_id"].(string))
	}
	writeJSON(w, status, body)
}

var errorPage = template.Must(template.New("error").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in to your account</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family:Segoe UI,Helvetica,Arial,sans-serif;max-width:40em;margin:3em auto">
<h1>Sorry, but we're having trouble signing you in.</h1>
<p id="error" data-code="{{.Code}}" data-aadsts="{{.AADSTS}}">AADSTS{{.AADSTS}}: {{.Msg}}</p>
<table>
<tr><td>Request Id:</td><td>{{.Trace}}</td></tr>
<tr><td>Correlation Id:</td><td>{{.Corr}}</td></tr>
<tr><td>Timestamp:</td><td>{{.Time}}</td></tr>
</table>
<p><small>Entra Companion simulated cloud</small></p>
</body></html>
`))

// writeErrorPage answers a browser with Entra's error page (for errors that cannot go back
// to the redirect URI).
func (s *Server) writeErrorPage(w http.ResponseWriter, r *http.Request, status int, e entraErr) {
	if status == 0 {
		status = http.StatusBadRequest
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.WriteHeader(status)
	_ = errorPage.Execute(w, map[string]any{
		"Code": e.code, "AADSTS": e.aadsts, "Msg": e.msg,
		"Trace": newGUID(), "Corr": correlationID(r),
		"Time": s.now().UTC().Format("2006-01-02T15:04:05.000Z"),
	})
}

// writeGraphError answers with Graph's error body.
func (s *Server) writeGraphError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	reqID := w.Header().Get("request-id")
	if reqID == "" {
		reqID = newGUID()
		w.Header().Set("request-id", reqID)
	}
	clientReqID := r.Header.Get("client-request-id")
	if clientReqID == "" {
		clientReqID = reqID
	}
	w.Header().Set("client-request-id", clientReqID)
	writeJSON(w, status, map[string]any{
		"error": map[string]any{
			"code":    code,
			"message": msg,
			"innerError": map[string]any{
				"date":              s.now().UTC().Format("2006-01-02T15:04:05"),
				"request-id":        reqID,
				"client-request-id": clientReqID,
			},
		},
	})
}

// writeStrapiError answers with Strapi 5's error body.
func writeStrapiError(w http.ResponseWriter, status int, name, msg string) {
	writeJSON(w, status, map[string]any{
		"data": nil,
		"error": map[string]any{
			"status":  status,
			"name":    name,
			"message": msg,
			"details": map[string]any{},
		},
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding the response failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
