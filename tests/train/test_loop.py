"""The one training loop, against a plain PyTorch loop written out here, and its callbacks."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attnlab.models.config import ModelOutput
from attnlab.train.loop import Callback, train_loop


class Regressor(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(3, 2)

    def forward(self, x, targets):
        out = self.linear(x)
        return ModelOutput(out, F.mse_loss(out, targets.float()))


def batch(step):
    g = torch.Generator().manual_seed(step)
    x = torch.randn(8, 3, generator=g)
    return {"x": x, "targets": 5 * x[:, :2] + 1}


def schedule(step):
    return 0.1 / (1 + step)


def plain_loop(model, steps, clip):
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    losses = []
    for step in range(steps):
        opt.param_groups[0]["lr"] = schedule(step)
        loss = model(**batch(step)).loss
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        losses.append(loss.item())
    return losses


def test_equals_a_plain_loop():
    expected_model = Regressor()
    expected = plain_loop(expected_model, 12, clip=0.5)
    model = Regressor()
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    done = train_loop(model, opt, batch, steps=12, schedule=schedule, grad_clip=0.5)
    assert done.losses == expected and done.steps == 12 and done.stopped == "finished"
    assert torch.equal(model.linear.weight, expected_model.linear.weight)
    assert not model.training  # left in eval mode


def test_accumulation_gives_the_gradients_of_the_whole_batch():
    whole, halves = Regressor(), Regressor()
    for model, accumulate in ((whole, 1), (halves, 2)):
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        train_loop(model, opt, batch, steps=5, accumulate=accumulate)
    torch.testing.assert_close(halves.linear.weight, whole.linear.weight)


def test_resuming_from_a_step_continues_the_schedule_and_batches():
    straight = Regressor()
    opt = torch.optim.AdamW(straight.parameters(), lr=0.1)
    full = train_loop(straight, opt, batch, steps=10, schedule=schedule).losses
    resumed = Regressor()
    opt = torch.optim.AdamW(resumed.parameters(), lr=0.1)
    train_loop(resumed, opt, batch, steps=4, schedule=schedule)
    rest = train_loop(resumed, opt, batch, steps=10, start=4, schedule=schedule)
    assert rest.steps == 10 and rest.losses == full[4:]


class Recorder(Callback):
    def __init__(self, stop_at=None):
        self.seen, self.stop_at = [], stop_at

    def should_stop(self, result):
        return "enough" if result.step == self.stop_at else None

    def on_step(self, result, *, last):
        self.seen.append((result.step, result.lr, last))


def test_callbacks_see_every_step_and_the_last_one_is_marked():
    recorder = Recorder()
    model = Regressor()
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    train_loop(model, opt, batch, steps=4, schedule=schedule, callbacks=[recorder])
    assert recorder.seen == [(s + 1, schedule(s), s == 3) for s in range(4)]


def test_a_callback_stops_the_loop_after_the_step():
    recorder, other = Recorder(stop_at=3), Recorder()
    model = Regressor()
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    done = train_loop(model, opt, batch, steps=10, callbacks=[recorder, other])
    assert (done.steps, done.stopped, len(done.losses)) == (3, "enough", 3)
    assert [last for *_, last in other.seen] == [False, False, True]  # every callback is told


def test_a_batch_that_does_not_split_is_refused():
    model = Regressor()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="batch 8 must be divisible by accumulate × processes = 3"):
        train_loop(model, opt, batch, steps=1, accumulate=3)


def test_accumulated_padded_micro_batches_give_the_whole_batchs_gradient():
    """Micro-batches with different numbers of scored targets (−100 = not scored): the loss is
    the mean over every scored target of the batch, so accumulate=2 must step exactly as
    accumulate=1 does (a mean of the micro-batch means would weigh short ones too much)."""
    from attnlab import GPT, GPTConfig

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 30, (4, 6), generator=g)
    targets = torch.randint(0, 30, (4, 6), generator=g)
    targets[:2, 1:] = -100  # the first micro-batch scores 2 targets, the second 12

    def run(accumulate):
        torch.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=30, max_len=8, n_layers=1, n_heads=2, d_model=8))
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        train_loop(model, optimizer, lambda step: {"input_ids": ids, "targets": targets},
                   steps=1, accumulate=accumulate)  # fmt: skip
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    torch.testing.assert_close(run(2), run(1), atol=1e-6, rtol=1e-5)
