"""Throughput baseline: the training loop of yjn870/ESPCN-pytorch, re-implemented.

Source read (not copied): https://github.com/yjn870/ESPCN-pytorch (prepare.py, models.py,
train.py, README.md at commit ab84ee1; its datasets.py / utils.py are the same as in
https://github.com/yjn870/SRCNN-pytorch). Run as its README says: x3, T91 HDF5 of LR 17x17 /
HR 51x51 Y patches (stride 13, PIL bicubic), batch 16, shuffle, num_workers 8, pin_memory,
drop_last=False, Adam lr 1e-3 with last_part at 0.1x, MSE loss, seed 123, Set5 PSNR each epoch.

Faithful quirks kept: the Dataset opens the HDF5 file in every __getitem__; the per-epoch lr
loop sets *every* param group to lr * 0.1**(epoch // int(0.8 * epochs)), which overwrites the
0.1x on last_part from epoch 0 on; loss.item() and a tqdm postfix refresh every step; a
state_dict is saved each epoch. Differences: images are data/T91/*.png and data/Set5/*.png
(glob '*.png' rather than '*' so SHA256SUMS is skipped); files go to a temp dir; the lr
divisor is max(1, int(0.8 * epochs)) so --epochs 1 does not divide by zero; CPU only.
Timing covers the training loop (DataLoader iteration included), not eval or checkpointing.

  python scripts/bench_yjn870.py --epochs 3
"""
import argparse, glob, math, os, tempfile, time

import h5py
import numpy as np
import PIL.Image as pil_image
import torch
from torch import nn, optim
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm


def rgb_to_y(img):
  return 16. + (64.738 * img[:, :, 0] + 129.057 * img[:, :, 1] + 25.064 * img[:, :, 2]) / 256.


def load_pair(path, scale):
  hr = pil_image.open(path).convert('RGB')
  w, h = (hr.width // scale) * scale, (hr.height // scale) * scale
  hr = hr.resize((w, h), resample=pil_image.BICUBIC)
  lr = hr.resize((w // scale, h // scale), resample=pil_image.BICUBIC)
  return rgb_to_y(np.array(lr).astype(np.float32)), rgb_to_y(np.array(hr).astype(np.float32))


def prepare_train(images_dir, out, scale=3, patch=17, stride=13):
  lrs, hrs = [], []
  for path in sorted(glob.glob(os.path.join(images_dir, '*.png'))):
    lr, hr = load_pair(path, scale)
    for i in range(0, lr.shape[0] - patch + 1, stride):
      for j in range(0, lr.shape[1] - patch + 1, stride):
        lrs.append(lr[i:i + patch, j:j + patch])
        hrs.append(hr[i * scale:(i + patch) * scale, j * scale:(j + patch) * scale])
  with h5py.File(out, 'w') as f:
    f.create_dataset('lr', data=np.array(lrs))
    f.create_dataset('hr', data=np.array(hrs))


def prepare_eval(images_dir, out, scale=3):
  with h5py.File(out, 'w') as f:
    lg, hg = f.create_group('lr'), f.create_group('hr')
    for i, path in enumerate(sorted(glob.glob(os.path.join(images_dir, '*.png')))):
      lr, hr = load_pair(path, scale)
      lg.create_dataset(str(i), data=lr)
      hg.create_dataset(str(i), data=hr)


class TrainDataset(Dataset):
  def __init__(self, h5_file):
    self.h5_file = h5_file
  def __getitem__(self, idx):  # opens the file per item, as yjn870's datasets.py does
    with h5py.File(self.h5_file, 'r') as f:
      return np.expand_dims(f['lr'][idx] / 255., 0), np.expand_dims(f['hr'][idx] / 255., 0)
  def __len__(self):
    with h5py.File(self.h5_file, 'r') as f:
      return len(f['lr'])


class EvalDataset(TrainDataset):
  def __getitem__(self, idx):
    with h5py.File(self.h5_file, 'r') as f:
      return (np.expand_dims(f['lr'][str(idx)][:, :] / 255., 0),
          np.expand_dims(f['hr'][str(idx)][:, :] / 255., 0))


class ESPCN(nn.Module):
  def __init__(self, scale_factor, num_channels=1):
    super().__init__()
    self.first_part = nn.Sequential(
      nn.Conv2d(num_channels, 64, kernel_size=5, padding=2), nn.Tanh(),
      nn.Conv2d(64, 32, kernel_size=3, padding=1), nn.Tanh())
    self.last_part = nn.Sequential(
      nn.Conv2d(32, num_channels * scale_factor ** 2, kernel_size=3, padding=1),
      nn.PixelShuffle(scale_factor))
    for m in self.modules():
      if isinstance(m, nn.Conv2d):
        std = 0.001 if m.in_channels == 32 else math.sqrt(2 / (m.out_channels * m.weight.data[0][0].numel()))
        nn.init.normal_(m.weight.data, mean=0.0, std=std)
        nn.init.zeros_(m.bias.data)
  def forward(self, x):
    return self.last_part(self.first_part(x))


def main():
  p = argparse.ArgumentParser()
  for name, typ, default in [('--epochs', int, 3), ('--lr', float, 1e-3), ('--batch-size', int, 16),
                               ('--num-workers', int, 8), ('--seed', int, 123)]:
    p.add_argument(name, type=typ, default=default)
  args = p.parse_args()
  root = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'data')
  tmp = tempfile.mkdtemp(prefix='yjn870_')
  train_file, eval_file = os.path.join(tmp, '91-image_x3.h5'), os.path.join(tmp, 'Set5_x3.h5')
  prepare_train(os.path.join(root, 'T91'), train_file)
  prepare_eval(os.path.join(root, 'Set5'), eval_file)

  torch.manual_seed(args.seed)
  device = torch.device('cpu')
  model = ESPCN(scale_factor=3).to(device)
  criterion = nn.MSELoss()
  optimizer = optim.Adam([{'params': model.first_part.parameters()},
              {'params': model.last_part.parameters(), 'lr': args.lr * 0.1}], lr=args.lr)
  train_dataset = TrainDataset(train_file)
  train_loader = DataLoader(train_dataset, batch_size=args.batch_size, shuffle=True,
                              num_workers=args.num_workers, pin_memory=True)
  eval_loader = DataLoader(EvalDataset(eval_file), batch_size=1)
  n = len(train_dataset)
  print(f'torch {torch.__version__}, threads {torch.get_num_threads()}, patches/epoch {n}, '
          f'batches/epoch {len(train_loader)}, h5 in {tmp}')

  total_patches, total_time = 0, 0.0
  for epoch in range(args.epochs):
    for g in optimizer.param_groups:  # as in train.py: overwrites last_part's 0.1x too
      g['lr'] = args.lr * (0.1 ** (epoch // max(1, int(args.epochs * 0.8))))
    model.train()
    seen, loss_sum = 0, 0.0
    t0 = time.perf_counter()
    with tqdm(total=n - n % args.batch_size, ncols=80) as t:
      t.set_description(f'epoch: {epoch}/{args.epochs - 1}')
      for inputs, labels in train_loader:
        inputs, labels = inputs.to(device), labels.to(device)
        loss = criterion(model(inputs), labels)
        loss_sum += loss.item() * len(inputs)
        seen += len(inputs)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        t.set_postfix(loss=f'{loss_sum / seen:.6f}')
        t.update(len(inputs))
    dt = time.perf_counter() - t0
    total_patches, total_time = total_patches + seen, total_time + dt
    torch.save(model.state_dict(), os.path.join(tmp, f'epoch_{epoch}.pth'))

    model.eval()
    psnr = []
    for inputs, labels in eval_loader:
      with torch.no_grad():
        preds = model(inputs.to(device)).clamp(0.0, 1.0)
      psnr.append((10. * torch.log10(1. / torch.mean((preds - labels.to(device)) ** 2))).item())
    print(f'epoch {epoch}: {seen} patches in {dt:.2f} s = {seen / dt:.1f} patches/s, '
              f'loss {loss_sum / seen:.6f}, Set5 PSNR {np.mean(psnr):.2f} dB', flush=True)
  print(f'overall: {total_patches} patches in {total_time:.2f} s = '
          f'{total_patches / total_time:.1f} patches/s over {args.epochs} epochs')


if __name__ == '__main__':
  main()
