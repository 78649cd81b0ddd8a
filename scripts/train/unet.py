"""The 2D U-Net shipped with vemscope: small enough for a few MB and >= 2 Mpx/s on 2 CPU cores.

Four resolution levels (16, 32, 64, 128 channels) and a 128-channel bottleneck; two 3x3 conv + BN + ReLU per
level; bilinear upsampling instead of transposed convolutions (no checkerboard artefacts at tile seams).
Input: one channel, per-section z-scored intensities (see NORMALISATION). Output: logits for the 7 class codes.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

CLASS_NAMES = ["background", "er", "mito", "ld", "lyso", "perox", "nucleus"]
NORMALISATION = "section-zscore"  # x = (pixel - mean(section)) / std(section), any bit depth
SIZE_MULTIPLE = 16  # four 2x poolings


def block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    def __init__(self, widths=(16, 32, 64, 128), bottleneck=128, classes=len(CLASS_NAMES)):
        super().__init__()
        self.widths = list(widths)
        self.down = nn.ModuleList()
        cin = 1
        for w in widths:
            self.down.append(block(cin, w))
            cin = w
        self.bottom = block(cin, bottleneck)
        self.up = nn.ModuleList()
        cin = bottleneck
        for w in reversed(widths):
            self.up.append(block(cin + w, w))
            cin = w
        self.head = nn.Conv2d(cin, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for b in self.down:
            x = b(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottom(x)
        for b, s in zip(self.up, reversed(skips)):
            x = F.interpolate(x, size=s.shape[-2:], mode="bilinear", align_corners=False)
            x = b(torch.cat([x, s], dim=1))
        return self.head(x)
