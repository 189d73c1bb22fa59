package handlers

// routes registers every route and middleware; this is the whole map of the app
// (design.md routes table).
func (s *Server) routes() {
	e := s.e

	// Order matters: request id first so every line carries it; the logger outside
	// recover, because Echo's RequestLogger logs after next returns (no defer) — a panic
	// that passed through it would leave no access-log line (security.md §12.2); recover
	// renders the 500 page before the logger reads the status; headers before anything
	// writes; body limit before CSRF reads the form; the session last, once.
	e.Use(
		s.requestID,
		s.requestLogger(),
		s.recoverer(),
		s.securityHeaders,
		s.bodyLimit,
		s.csrf(),
		s.loadSession,
	)

	// Per-route body limits; every other route gets defaultBodyLimit (64 KiB forms).
	// None is unlimited (security.md §10 "Server").
	s.bodyLimits = map[string]int64{
		"POST /webhooks/lumin": webhookBodyLimit, // security.md §11.2
		"POST /requests":       sendBodyLimit,    // PDF upload ≤ 20 MiB + form (issue 5, security.md §8.6)
	}

	e.GET("/", s.handleHome)
	e.GET("/healthz", s.handleHealthz)
	e.GET("/static/*", s.handleStatic)

	e.GET("/auth/connect", s.handleConnect)
	e.GET("/auth/callback", s.handleCallback)
	e.POST("/auth/logout", s.handleLogout)         // CSRF-protected (security.md §9.1)
	e.POST("/auth/disconnect", s.handleDisconnect) // CSRF-protected (security.md §9.1)

	e.GET("/dashboard", s.handleDashboard, s.requireConnected)

	// Signature requests (issue 5, requests.go). Every POST is behind the CSRF middleware.
	// Use per-route middleware, not e.Group("", …): an Echo group with middleware
	// registers catch-all routes that would turn every 404 into its middleware's answer.
	read, write := s.requireScope(false), s.requireScope(true)
	e.GET("/requests", s.handleRequestsList, s.requireConnected, read)
	e.GET("/requests/new", s.handleRequestsNew, s.requireConnected, write)
	e.POST("/requests", s.handleRequestsSend, s.requireConnected, write)
	e.POST("/requests/track", s.handleRequestsTrack, s.requireConnected, read)
	e.GET("/requests/:id", s.handleRequestDetail, s.requireConnected, read)
	e.POST("/requests/:id/cancel", s.handleRequestCancel, s.requireConnected, write)
	e.POST("/requests/:id/remind", s.handleRequestRemind, s.requireConnected, write)
	e.POST("/requests/:id/expiry", s.handleRequestExpiry, s.requireConnected, write)
	e.GET("/requests/:id/file", s.handleRequestFile, s.requireConnected, read)

	// Lumin app webhooks (webhooks.go): CSRF-skipped and session-free, HMAC instead
	// (security.md §11); 404 without LUMIN_WEBHOOK_SECRET.
	e.POST("/webhooks/lumin", s.handleWebhook)
}
