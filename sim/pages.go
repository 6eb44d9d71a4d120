package sim

import "html/template"

type formField struct{ Name, Value string }

const pageStyle = `<style>
body{font-family:"Segoe UI",Helvetica,Arial,sans-serif;background:#f2f2f2;margin:0}
main{background:#fff;max-width:28em;margin:3em auto;padding:2em 2.5em;box-shadow:0 2px 6px rgba(0,0,0,.2)}
h1{font-size:1.5em;font-weight:600;margin:.2em 0 .8em}
label{display:block;margin:.6em 0 .2em}
input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:.4em;border:0;border-bottom:1px solid #666;font-size:1em}
button{margin-top:1em;padding:.4em 1.8em;font-size:1em;border:0;background:#0067b8;color:#fff;cursor:pointer}
button.secondary{background:#ccc;color:#000}
.error{color:#e81123}
table{border-collapse:collapse;margin-top:1.5em;font-size:.85em;width:100%}
td,th{text-align:left;padding:.25em .4em;border-top:1px solid #eee}
tr.pick{cursor:pointer}tr.pick:hover{background:#eef6fc}
small{color:#666}
</style>`

var loginPage = template.Must(template.New("login").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in to your account</title>
<meta name="viewport" content="width=device-width, initial-scale=1">` + pageStyle + `</head>
<body><main>
<div><small>{{.Tenant}}</small></div>
<h1>Sign in</h1>
<p>to continue to <b>{{.App}}</b></p>
{{if .Error}}<p class="error" id="loginError" data-aadsts="{{.AADSTS}}">{{.Error}}</p>{{end}}
<form id="loginForm" method="post" action="{{.Action}}">
<input type="hidden" name="ctx" value="{{.Ctx}}">
<label for="login">Email, phone, or Skype</label>
<input type="text" id="login" name="login" value="{{.Hint}}" autocomplete="username" autofocus>
<label for="passwd">Password</label>
<input type="password" id="passwd" name="passwd" value="" autocomplete="current-password">
<button type="submit" name="action" value="signin" id="idSIButton9">Sign in</button>
<button type="submit" name="action" value="cancel" class="secondary" id="idBtn_Back">Cancel</button>
</form>
<table id="accounts"><tr><th colspan="3">Accounts in this simulated directory (click to fill in)</th></tr>
{{range .Choices}}<tr class="pick" data-login="{{.Login}}" data-passwd="{{.Password}}"><td>{{.DisplayName}}</td><td>{{.Login}}</td><td><small>{{.Note}}</small></td></tr>
{{end}}</table>
<p><small>Entra Companion simulated cloud: no real account is involved.</small></p>
</main>
<script>
document.querySelectorAll("tr.pick").forEach(function (row) {
  row.addEventListener("click", function () {
    document.getElementById("login").value = row.dataset.login;
    document.getElementById("passwd").value = row.dataset.passwd;
  });
});
</script>
</body></html>
`))

// formPostPage is Entra's response_mode=form_post page.
var formPostPage = template.Must(template.New("formpost").Parse(`<html><head><title>Working...</title></head><body><form method="POST" name="hiddenform" action="{{.Action}}">{{range .Fields}}<input type="hidden" name="{{.Name}}" value="{{.Value}}" />{{end}}<noscript><p>Script is disabled. Click Submit to continue.</p><input type="submit" value="Submit" /></noscript></form><script language="javascript">document.forms[0].submit();</script></body></html>`))

var signedOutPage = template.Must(template.New("signedout").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Sign out</title>` + pageStyle + `</head>
<body><main><h1>You signed out of your account</h1>
<p>It's a good idea to close all browser windows.</p>
{{if .Target}}<p><a id="continue" href="{{.Target}}">Continue</a></p>{{end}}
</main></body></html>
`))

var deviceCodePage = template.Must(template.New("devicecode").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Enter code</title>` + pageStyle + `</head>
<body><main><h1>Enter code</h1>
<p>Enter the code displayed on your app or device.</p>
{{if .Error}}<p class="error" id="codeError">{{.Error}}</p>{{end}}
<form id="codeForm" method="post" action="/devicelogin">
<input type="text" name="otc" id="otc" value="{{.Code}}" placeholder="Code" autocomplete="off" autofocus>
<button type="submit">Next</button>
</form></main></body></html>
`))

var deviceSignInPage = template.Must(template.New("devicesignin").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in to your account</title>` + pageStyle + `</head>
<body><main>
<div><small>{{.Tenant}}</small></div>
<h1>Are you trying to sign in to {{.App}}?</h1>
<p>Only continue if you downloaded the app from a store or website that you trust.</p>
{{if .Error}}<p class="error" id="loginError">{{.Error}}</p>{{end}}
<form id="deviceSignInForm" method="post" action="/devicelogin">
<input type="hidden" name="otc" value="{{.Code}}">
<label for="login">Email, phone, or Skype</label>
<input type="text" id="login" name="login" value="{{.Login}}" autocomplete="username">
<label for="passwd">Password</label>
<input type="password" id="passwd" name="passwd" value="" autocomplete="current-password">
<button type="submit" name="action" value="approve">Continue</button>
<button type="submit" name="action" value="deny" class="secondary">Cancel</button>
</form>
<table id="accounts"><tr><th colspan="3">Accounts in this simulated directory (click to fill in)</th></tr>
{{range .Choices}}<tr class="pick" data-login="{{.Login}}" data-passwd="{{.Password}}"><td>{{.DisplayName}}</td><td>{{.Login}}</td><td><small>{{.Note}}</small></td></tr>
{{end}}</table>
</main>
<script>
document.querySelectorAll("tr.pick").forEach(function (row) {
  row.addEventListener("click", function () {
    document.getElementById("login").value = row.dataset.login;
    document.getElementById("passwd").value = row.dataset.passwd;
  });
});
</script>
</body></html>
`))

var deviceDonePage = template.Must(template.New("devicedone").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title>` + pageStyle + `</head>
<body><main><h1 id="result" data-result="{{.Result}}">{{.Title}}</h1><p>{{.Message}}</p></main></body></html>
`))

var indexPage = template.Must(template.New("index").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Entra Companion simulated cloud</title>` + pageStyle + `</head>
<body><main><h1>Entra Companion simulated cloud</h1>
<table>
<tr><td>Authority</td><td>{{.Authority}}</td></tr>
<tr><td>Graph</td><td>{{.Graph}}</td></tr>
<tr><td>CMS</td><td>{{.CMS}}</td></tr>
{{if .Pages}}<tr><td>Pages</td><td>{{.Pages}}</td></tr>{{end}}
{{range .Tenants}}<tr><td>Tenant</td><td>{{.DisplayName}}: {{.Domain}} ({{.ID}})</td></tr>{{end}}
{{range .Choices}}<tr><td>User</td><td>{{.Login}} <small>{{.Note}}</small></td></tr>{{end}}
</table>
<p><a href="/devicelogin">Device code sign-in</a></p>
</main></body></html>
`))
