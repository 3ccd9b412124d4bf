"""The home of every constant shared across jaxmatte (trimap codes, ranges, normalisation).

Subsystems keep their own constants in their own section below; configs hold the tunables.
"""

# --- trimap and alpha encoding (8-bit files) ---
TRIMAP_BG = 0
TRIMAP_UNKNOWN = 128
TRIMAP_FG = 255
TRIMAP_CODES = (TRIMAP_BG, TRIMAP_UNKNOWN, TRIMAP_FG)
# Model-side thresholds on 8-bit trimaps: < 85 -> background, >= 170 -> foreground.
TRIMAP_BG_BELOW = 85
TRIMAP_FG_FROM = 170
# Scalar trimap label values consumed by models and trimap-label losses.
LABEL_BG = 0.0
LABEL_UNKNOWN = 0.5
LABEL_FG = 1.0
# FG / BG seed thresholds on alpha in [0, 1] for trimap generators.
ALPHA_FG_SEED = 1.0 - 1e-5
ALPHA_BG_SEED = 1e-5
UINT8_MAX = 255

# --- image normalisation (ImageNet, RGB in [0, 1]) ---
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# --- mesh ---
DATA_AXIS = "data"

# --- metrics ---

# --- propagation ---

# --- foreground ---

# --- data ---

# --- models ---
