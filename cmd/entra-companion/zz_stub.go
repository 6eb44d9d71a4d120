package main

import (
	"context"
	"errors"
)

type trayOptions struct{ demo bool }

func (e *env) runTray(ctx context.Context, o trayOptions) error { return errors.New("stub") }
