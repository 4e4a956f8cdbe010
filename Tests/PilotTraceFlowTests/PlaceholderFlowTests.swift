import Testing
@testable import PilotTraceFlow
