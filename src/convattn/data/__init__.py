"""Datasets as Lightning DataModules, all following `convattn.data.base.ClassificationDataModule`.

`DATA_MODULES` names every data module a config or a run dir may refer to, by its `_target_`
path, with the dataset name it records; reading it imports none of them.
"""

DATA_MODULES = {
    "convattn.data.digits.DigitsDataModule": "digits",
    "convattn.data.torchvision_sets.MNISTDataModule": "mnist",
    "convattn.data.torchvision_sets.FashionMNISTDataModule": "fashion_mnist",
    "convattn.data.torchvision_sets.CIFAR10DataModule": "cifar10",
    "convattn.data.torchvision_sets.CIFAR100DataModule": "cifar100",
    "convattn.data.image_folder.ImageFolderDataModule": "imagefolder",
}
