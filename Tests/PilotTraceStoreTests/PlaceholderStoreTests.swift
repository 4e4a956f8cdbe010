import Testing
@testable import PilotTraceStore
