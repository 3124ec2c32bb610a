"""The operator's dashboard: server-rendered pages mounted by ``create_app``."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
