"""What every JSON report carries: its kind, the schema version and the flopcast version."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from flopcast._version import __version__

# Bump when a report's fields change incompatibly (a removed or renamed field, a changed unit).
# 2.2: estimate.finetune and inputs.finetune/lora_rank/lora_targets/epochs, plan inputs.finetune/lora_rank/epochs;
#      measured models (inputs.samples/torch_model, model.measured)
SCHEMA_VERSION = "2.2"  # 2.1: parallelism.cp/ep, step_breakdown.cp_comm_seconds/ep_comm_seconds; 2.0: memory parts


class ReportBase(BaseModel):
    """Base of every report. ``report`` names the kind (estimate, plan, compare, size, serve, bench, ...)."""

    model_config = ConfigDict(extra="forbid")

    report: str
    schema_version: str = SCHEMA_VERSION
    flopcast_version: str = __version__
    warnings: list[str] = Field(default_factory=list)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)
