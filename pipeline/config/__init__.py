"""Settings: the sections (sections.py), how they are loaded (loader.py), and the presets (presets/*.toml)."""
from .loader import (
    DEPRECATED,
    PRESETS_DIR,
    available_presets,
    build_config,
    load_config,
    to_toml,
    tomllib,
)
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
    TrainConfig,
    ZipConfig,
    digest,
)

__all__ = ["ACCELERATORS", "DEPRECATED", "LR_SCALING", "PRESETS_DIR", "RUN_KEYS", "AugmentConfig", "Config",
           "DownloadConfig", "GenerateConfig", "HardwareConfig", "KernelConfig", "PathsConfig", "ScoreConfig",
           "SubmitConfig", "TrainConfig", "ZipConfig", "available_presets", "build_config", "digest",
           "load_config",
           "to_toml", "tomllib"]
