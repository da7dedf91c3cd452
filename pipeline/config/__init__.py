"""Settings: the sections (sections.py), how they are loaded (loader.py), the presets (presets/*.toml), the
model families' sections as they register them (models.py), and the old names still read (legacy.py)."""
from .loader import (
    PRESETS_DIR,
    available_presets,
    build_config,
    load_config,
    load_for_kaggle,
    to_toml,
    tomllib,
)
from .models import model_sections, register_model
from .sections import (
    ACCELERATORS,
    LR_SCALING,
    RUN_KEYS,
    AugmentConfig,
    Config,
    DownloadConfig,
    GenerateConfig,
    HardwareConfig,
    KernelConfig,
    PathsConfig,
    ScoreConfig,
    SubmitConfig,
    SweepConfig,
    TrainConfig,
    ZipConfig,
    require,
)

__all__ = ["ACCELERATORS", "LR_SCALING", "PRESETS_DIR", "RUN_KEYS", "AugmentConfig", "Config",
           "DownloadConfig", "GenerateConfig", "HardwareConfig", "KernelConfig", "PathsConfig", "ScoreConfig",
           "SubmitConfig", "SweepConfig", "TrainConfig", "ZipConfig", "available_presets", "build_config",
           "load_config", "load_for_kaggle", "model_sections", "register_model", "require", "to_toml",
           "tomllib"]
