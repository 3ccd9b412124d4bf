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
# DIM MATLAB scripts (DIM_evaluation_code/): SAD, Grad and Conn are reported /1000 (evaluate.m).
METRIC_SCALE = 1000.0
GRAD_SIGMA = 1.4  # gaussgradient(., 1.4) in compute_gradient_loss.m
GRAD_EPSILON = 1e-2  # gaussgradient.m: kernel half-size from this tail mass
CONN_STEP = 0.1  # compute_connectivity_error(., 0.1) in evaluate.m
CONN_THETA = 0.15  # phi = 1 - d * [d >= 0.15]
P3M_GRAD_SCALE = 10.0  # JizhiziLi/P3M compute_gradient_whole_image divides by 10
UINT16_PER_UINT8 = 257.0  # 65535 / 255: 16-bit PNG values -> 0..255

# --- propagation ---
# Closed-form matting defaults: eps of the colour-line regulariser (Levin's code and pymatting)
# and the confidence lambda of trimap-known pixels for soft constraints (Levin et al. 2008,
# Sec. 3.1). fp32 handles eps 1e-7 because the window inverse goes through a QR factor
# (laplacian.window_factor); an explicit 3 x 3 inverse lost ~1e-2 of each entry.
MATTING_EPS = 1e-7
MATTING_LAMBDA = 100.0
# PCG defaults: relative residual tolerance and iteration cap (dmp.md Sec. 4.2).
CG_TOL = 1e-5
CG_MAXITER = 2000
# Closed-form matting's tolerance (SAD within 0.1% of a converged solve) and iteration cap (the
# largest realmatte unknown region, GT13, needs ~4100 Jacobi-PCG iterations at eps 1e-7).
CG_TOL_CLOSED_FORM = 1e-6
CG_MAXITER_CLOSED_FORM = 10000
# Closed-form matting solves on the T x T tiles that hold unknown pixels (propagation/tiles.py):
# the tile size, and the slot capacities tried in turn, as fractions of the image's tiles (8 x 8
# tiles keep 9-46% of a realmatte image; a trimap beyond the largest solves on the full grid).
CF_TILE = 8
CF_TILE_SLOTS = (0.2, 0.35, 0.5)
# Haloed tiles per call of the tiled closed-form system (`propagation/tile_system.py`): one
# compiled program serves every image; the last chunk is padded.
CF_PATCH_CHUNK = 256
# Relative ridge rho * mean(diag(A)) added to images with no known pixel (dmp.md Sec. 4.3).
SINGULAR_RIDGE = 1e-6
# Aggregation multigrid preconditioner (propagation/multigrid.py): first-level tile size, Jacobi
# damping, smoothing sweeps, tile count of the exactly solved coarsest level, and the relative
# eigenvalue cut of its pseudo-inverses (above fp32 rounding of the 4 x 4 blocks).
MG_TILE = 4
MG_OMEGA = 0.5
MG_SWEEPS = 1
MG_COARSEST_TILES = 64
MG_PINV_REL = 1e-5

# --- foreground ---
# LSA Algorithm 2 (code tools/reestimate_foreground_final.py): S levels, kappa, T sweeps
# at the finest level (T * 2**s at level s).
FG_LEVELS = 6
FG_KAPPA = 1.0
FG_FINEST_ITERS = 20

# --- data ---
# Image files a dataset folder may hold (matched case-insensitively, paired by stem).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# A matte stored as RGB is read from channel 0 only if its channels differ by at most this (8-bit
# levels; JPEG chroma noise), otherwise the file is rejected as a photo, not a matte.
ALPHA_RGB_TOLERANCE = 8

# --- data recipes: the papers' pixel sizes (recipes.px scales them by a recipe's pixel_scale) ---
GCA_PAIR_RESIZE = 640  # GCA: the foreground pair resized to 640 x 640 (p = 0.25)
GCA_ERODE_K = (1, 29)  # GCA / SGM: random erosion kernel sides k_fg, k_bg ~ U{1..29}
TCP_NOISE_ERODE_K = (1, 10)  # TCP's noisier trimap: erosion / dilation sides (tcp.md §8)
TCP_NOISE_DILATE_K = (1, 30)
SGM_SOFTSEG_K = (1, 59)  # SGM soft segmentation: erosion / dilation sides (sgm.md §2.3)
SGM_SOFTSEG_BLUR = (21, 31, 41)  # ... and its Gaussian blur kernel sides
SGM_TARGET_K = 15  # SGM Net-T target: the 15 x 15 erosion trimap
LSA_TRIMAP_R = (1, 24)  # LSA trimap radii r_fg, r_bg ~ U{1..24} (lsa.md §6 step 11)

# --- models ---
# BatchNorm: Flax momentum = 1 - PyTorch momentum (0.1 -> 0.9); PyTorch's default epsilon.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5
# BatchNorm modes of the CNN backbones: batch statistics / running statistics / cross-device.
BN_MODES = ("train", "frozen", "sync")
# ViTMatte pads its input to a multiple of 32 (spec ddc_vitmatte.md 4.1); modes of pad_to_multiple.
VITMATTE_PAD_MULTIPLE = 32
PAD_MODES = ("vitmatte_quirk", "minimal")
# Channels of every batch key a model may read ([B, H, W, C] float32): "image" is ImageNet-
# normalised RGB, trimaps hold labels {0, 0.5, 1}, "softseg" is SGM's 2-channel soft
# segmentation, "mask" a coarse 0..1 mask (SGM joint inference), "alpha" ground truth in [0, 1].
BATCH_CHANNELS = {
    "image": 3,
    "trimap": 1,
    "trimap_tcp": 1,
    "softseg": 2,
    "mask": 1,
    "alpha": 1,
    "fg": 3,
    "bg": 3,
}
