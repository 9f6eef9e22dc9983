"""The real photos the fast-decode fidelity is measured on: every distinct JPEG wallpaper of the
Debian packages mate-backgrounds, lomiri-wallpapers-16.04 and -20.04 (Ubuntu's wallpaper
contest photographs), ukui-wallpapers and plasma-workspace-wallpapers (scripts/setup.sh installs
them): 56 pictures of 1.3 to 24 MP, most of them photographs, some renders. A picture shipped at
several sizes counts once, at its largest."""
import glob
import os

MIN_PHOTOS = 50


def _pixels(path):
    from PIL import Image
    with Image.open(path) as image:
        return image.size[0] * image.size[1]


def _largest(paths):
    return max(paths, key=_pixels)


def photos():
    """The photo paths, sorted; fails loudly when the packages are missing (never skips)."""
    files = []
    by_picture = {}  # mate ships Elephants.jpg, Elephants_3840x2160.jpg, ...
    for path in glob.glob("/usr/share/backgrounds/mate/*/*.jpg"):
        name = os.path.splitext(os.path.basename(path))[0].split("_")[0]
        by_picture.setdefault(name, []).append(path)
    files += [_largest(paths) for paths in by_picture.values()]
    files += glob.glob("/usr/share/backgrounds/*.jpg")  # lomiri and ukui
    for folder in glob.glob("/usr/share/wallpapers/*/contents/images"):  # plasma, per picture
        jpegs = [p for p in glob.glob(folder + "/*.jpg") if os.path.getsize(p) > 0]
        if jpegs:
            files.append(_largest(jpegs))
    files = sorted(set(os.path.realpath(p) for p in files))
    if len(files) < MIN_PHOTOS:
        raise RuntimeError(f"found {len(files)} wallpaper photos, expected at least {MIN_PHOTOS}: "
                           "install the packages scripts/debian-test-packages.txt lists for them "
                           "(scripts/setup.sh does)")
    return files
