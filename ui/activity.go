package ui

import (
	"context"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/entra-companion/entra-companion/auth"
)

// activity is a window's strip for work that waits: a progress bar and a line saying what is
// going on, a Cancel button while it can be cancelled, and afterwards the outcome in words with
// the button that fixes a problem (Sign in again) when there is one. Its methods run on Fyne's
// goroutine; the work itself runs in a goroutine of the UI.
type activity struct {
	u      *UI
	bar    *widget.ProgressBarInfinite
	status *widget.Label
	cancel *widget.Button
	fix    *widget.Button
	box    *fyne.Container

	seq    int                // which run is current; results of older runs are dropped
	stop   context.CancelFunc // cancels the current run
	fixAcc auth.Account
	// onChange is told when a run starts (true) and ends (false), to enable buttons.
	onChange func(busy bool)
	// win is the window whose content is laid out again when the strip grows or shrinks.
	win fyne.Window
}

func newActivity(u *UI, w fyne.Window) *activity {
	a := &activity{u: u, win: w}
	a.bar = widget.NewProgressBarInfinite()
	a.bar.Stop()
	a.bar.Hide()
	a.status = widget.NewLabel("")
	a.status.Wrapping = fyne.TextWrapWord
	a.status.Hide()
	a.cancel = widget.NewButtonWithIcon("Cancel", theme.CancelIcon(), a.Cancel)
	a.cancel.Hide()
	a.fix = widget.NewButtonWithIcon("Sign in again", theme.LoginIcon(), func() {
		acc := a.fixAcc
		a.u.signInAgain(acc)
	})
	a.fix.Hide()
	a.box = container.NewBorder(nil, nil, nil, container.NewHBox(a.fix, a.cancel), container.NewVBox(a.bar, a.status))
	return a
}

// Busy reports whether a run is under way.
func (a *activity) Busy() bool { return a.stop != nil }

// Cancel cancels the current run, if any.
func (a *activity) Cancel() {
	if a.stop != nil {
		a.stop()
	}
}

// Say shows a line without progress (an outcome, a hint).
func (a *activity) Say(text string) { a.say(text, widget.MediumImportance) }

// Warn shows a problem in words, in the theme's error colour.
func (a *activity) Warn(text string) { a.say(text, widget.DangerImportance) }

func (a *activity) say(text string, imp widget.Importance) {
	a.status.Importance = imp
	a.status.SetText(text)
	if text == "" {
		a.status.Hide()
	} else {
		a.status.Show()
	}
	a.relayout()
}

// relayout lays the window out again: the strip's height changes with what it shows.
func (a *activity) relayout() {
	if a.win != nil && a.win.Content() != nil {
		a.win.Content().Refresh()
	}
}

// Problem shows err in words, with the Sign in again button when that fixes it.
func (a *activity) Problem(err error, acc *auth.Account) {
	p := explain(err, acc)
	if p.Cancelled {
		a.Say(p.Text)
	} else {
		a.Warn(p.Text)
	}
	if p.SignIn != nil {
		a.fixAcc = *p.SignIn
		a.fix.Show()
	} else {
		a.fix.Hide()
	}
	a.relayout()
}

// Run shows msg with progress and runs work in a goroutine with a context that Cancel (when
// cancellable) and the UI's shutdown cancel. When work returns, its apply (if any) runs on
// Fyne's goroutine, then its error (if any) is shown in words: work may return both, to show
// what it got before it failed. Starting a run cancels the previous one.
// acc names the account the work is for, to word errors.
func (a *activity) Run(msg string, cancellable bool, acc *auth.Account, work func(ctx context.Context) (apply func(), err error)) {
	a.Cancel()
	a.seq++
	seq := a.seq
	ctx, stop := context.WithCancel(a.u.ctx)
	a.stop = stop
	a.fix.Hide()
	a.Say(msg)
	a.bar.Show()
	a.bar.Start()
	if cancellable {
		a.cancel.Show()
	} else {
		a.cancel.Hide()
	}
	a.relayout()
	if a.onChange != nil {
		a.onChange(true)
	}
	var who *auth.Account
	if acc != nil {
		c := *acc
		who = &c
	}
	a.u.goFn(func() {
		apply, err := work(ctx)
		stop()
		a.u.do(func() {
			if seq != a.seq {
				return
			}
			a.stop = nil
			a.bar.Stop()
			a.bar.Hide()
			a.cancel.Hide()
			a.Say("")
			if apply != nil {
				apply()
			}
			if err != nil {
				a.Problem(err, who)
			}
			if a.onChange != nil {
				a.onChange(false)
			}
		})
	})
}
