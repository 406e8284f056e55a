"""WhatsApp engines: the protocol the session host talks to, and the registry of engines.

Nothing here imports Flask, SQLAlchemy or Celery; engine modules are imported on the first
registry lookup, not when this package is imported.
"""
from engines.base import (
    Engine,
    EngineCrashed,
    EngineError,
    EngineEvent,
    EngineNotFound,
    EngineNotReady,
    EngineOptions,
    EngineState,
    EngineUnsupported,
    EventKind,
    NumberStatus,
    SentMessage,
    normalise_chat_id,
)
from engines.registry import (
    UnknownEngine,
    available,
    backup_exclusions,
    create_engine,
    get_engine_class,
    register,
)

__all__ = [
    "Engine",
    "EngineCrashed",
    "EngineError",
    "EngineEvent",
    "EngineNotFound",
    "EngineNotReady",
    "EngineOptions",
    "EngineState",
    "EngineUnsupported",
    "EventKind",
    "NumberStatus",
    "SentMessage",
    "UnknownEngine",
    "available",
    "backup_exclusions",
    "create_engine",
    "get_engine_class",
    "normalise_chat_id",
    "register",
]
